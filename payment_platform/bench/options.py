"""The benchmark's command-line options, kept import-light so `payment-platform --help` stays fast."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    home = Path(os.environ.get("PAYMENT_HOME") or ".")
    parser.add_argument("--smoke", action="store_true", help="a tiny run that finishes in well under a minute")
    parser.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (default: start an embedded broker)")
    parser.add_argument(
        "--mysql-url",
        default="mysql+pymysql://root@127.0.0.1:3306/",
        help="server URL; a fresh database is created on it and dropped at the end",
    )
    parser.add_argument("--json", type=Path, default=home / "bench.json", help="where to write the results")
    parser.add_argument("--skip-scaling", action="store_true", help="leave out the one-vs-two-processes run")
