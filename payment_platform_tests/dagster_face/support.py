"""Shared helpers of the Dagster tests: the real definitions, bound to a temporary PAYMENT_HOME."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
from sklearn.linear_model import LogisticRegression

from payment_platform.definitions import defs as load_definitions
from payment_platform.defs.resources import KafkaResource, PaymentHomeResource, ScorerPoolResource, ScoreStoreResource
from payment_platform.model import ModelRegistry

DEFS = load_definitions()
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def build_test_resources(home: Path) -> dict[str, dg.ConfigurableResource]:
    return {
        "kafka": KafkaResource(bootstrap_servers="127.0.0.1:1"),  # nothing here talks to Kafka
        "score_store": ScoreStoreResource(url=f"sqlite:///{home / 'payments.db'}"),
        "payment_home": PaymentHomeResource(path=str(home)),
        "scorer_pool": ScorerPoolResource(size=1),
    }


def platform_defs(resources: dict[str, dg.ConfigurableResource]) -> dg.Definitions:
    """The code location's own definitions, bound to the test's resources."""
    return dg.Definitions(
        assets=DEFS.assets,
        asset_checks=DEFS.asset_checks,
        jobs=DEFS.jobs,
        sensors=DEFS.sensors,
        schedules=DEFS.schedules,
        resources=resources,
    )


def metadata_values(metadata: dict[str, dg.MetadataValue]) -> dict[str, object]:
    return {key: value.value for key, value in metadata.items()}


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, object]]:
    """Metadata of each materialized asset, by key."""
    return {
        event.asset_key.to_user_string(): metadata_values(event.materialization.metadata)
        for event in result.get_asset_materialization_events()
    }


def only_check(result: dg.ExecuteInProcessResult, name: str | None = None) -> dg.AssetCheckEvaluation:
    """The run's one check evaluation (of the check called `name`, when given)."""
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if name is None or e.check_name == name]
    return evaluation


def small_model() -> LogisticRegression:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2))
    return LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))


def promote_a_model(home: Path) -> str:
    registry = ModelRegistry(home / "models")
    version = registry.save(small_model(), ["a", "b"], {"review_threshold": 0.2, "decline_threshold": 0.8})
    registry.promote(version)
    return version
