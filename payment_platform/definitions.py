"""The Dagster code location: everything under `defs/`, found by Dagster's own loader, nothing else."""

import warnings
from pathlib import Path

import dagster as dg

# Dagster 1.13 copies every sensor whose jobs need resources (SensorDefinition.with_attributes) and
# passes the sensor's empty `owners` list along, which warns that `owners` is in beta although no
# code here sets it. That one warning, whose cause is in Dagster, is silenced; every other stays on.
warnings.filterwarnings(
    "ignore", message=r"Parameter `owners` of initializer `SensorDefinition\.__init__`", category=dg.BetaWarning
)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
