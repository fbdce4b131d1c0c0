"""Platform configuration read from the environment (CONTRACTS §3), in one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_HOME = "./.payment_platform"


@dataclass(frozen=True)
class Settings:
    """Where the platform's services and local state live."""

    home: Path
    kafka_bootstrap: str
    db_url: str
    consumer_group: str
    payment_topic: str
    labels_topic: str
    dlq_topic: str
    decisions_topic: str
    repartition: bool = True  # PAYMENT_REPARTITION=off: producers key by customer_id, no repartition topic

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("PAYMENT_HOME") or DEFAULT_HOME).expanduser().resolve()
        return cls(
            home=home,
            kafka_bootstrap=env.get("PAYMENT_KAFKA_BOOTSTRAP") or "127.0.0.1:9092",
            db_url=env.get("PAYMENT_DB_URL") or f"sqlite:///{home / 'payments.db'}",
            consumer_group=env.get("PAYMENT_CONSUMER_GROUP") or "payment-scorer",
            payment_topic=env.get("PAYMENT_TOPIC") or "payments",
            labels_topic=env.get("PAYMENT_LABELS_TOPIC") or "payment-labels",
            dlq_topic=env.get("PAYMENT_DLQ_TOPIC") or "payments.dlq",
            decisions_topic=env.get("PAYMENT_DECISIONS_TOPIC") or "payments.decisions",
            repartition=(env.get("PAYMENT_REPARTITION") or "on").lower() not in ("off", "0", "false", "no"),
        )

    @property
    def model_dir(self) -> Path:
        """The versioned model registry."""
        return self.home / "models"

    @property
    def history_dir(self) -> Path:
        """Daily partitions of labelled payment history (Parquet)."""
        return self.home / "history"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"


def redact_url(url: str) -> str:
    """The URL with its password masked, safe to print or log."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # not a URL at all: show nothing of it
        return "<unparseable database URL>"
