"""The benchmark's command-line options, kept import-light so `payment-platform --help` stays fast."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    home = Path(os.environ.get("PAYMENT_HOME") or ".")
    parser.add_argument("--smoke", action="store_true", help="every phase, tiny: finishes in well under a minute")
    parser.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (default: start an embedded broker)")
    parser.add_argument(
        "--mysql-url",
        default="mysql+pymysql://root@127.0.0.1:3306/",
        help="server URL; a fresh database is created on it and dropped at the end",
    )
    parser.add_argument("--json", type=Path, default=home / "bench.json", help="where to write the results")
    parser.add_argument("--skip-latency", action="store_true", help="leave out the paced latency runs (~2 min)")
    parser.add_argument(
        "--skip-memory", action="store_true", help="leave out the 1M-card feature state probes (~3 min, ~3 GiB each)"
    )
    parser.add_argument("--skip-scaling", action="store_true", help="leave out the 1/2/4-process scaling runs (~3 min)")
    parser.add_argument(
        "--soak-minutes",
        type=float,
        default=0.0,
        help="instead of the benchmark, a soak: minutes of steady load (e.g. 10), memory and latency over time",
    )
    parser.add_argument("--soak-rate", type=int, default=5_000, help="payments/s offered during the soak")
