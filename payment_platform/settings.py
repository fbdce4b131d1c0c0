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
    scorers: int = 1

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
            scorers=_positive_int(env, "PAYMENT_SCORERS", 1),
        )

    def as_environment(self) -> dict[str, str]:
        """Every variable of CONTRACTS §3 with its default filled in.

        Dagster binds its resources to these variables (`dg.EnvVar`), resolved when a run or a sensor
        uses them: a process that runs Dagster code gets them all, so the embedded defaults work there
        too, and the UI shows the variable's name, never its value."""
        return {
            "PAYMENT_HOME": str(self.home),
            "PAYMENT_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "PAYMENT_DB_URL": self.db_url,
            "PAYMENT_CONSUMER_GROUP": self.consumer_group,
            "PAYMENT_TOPIC": self.payment_topic,
            "PAYMENT_LABELS_TOPIC": self.labels_topic,
            "PAYMENT_DLQ_TOPIC": self.dlq_topic,
            "PAYMENT_DECISIONS_TOPIC": self.decisions_topic,
            "PAYMENT_SCORERS": str(self.scorers),
        }

    @property
    def model_dir(self) -> Path:
        """The versioned model registry."""
        return model_dir(self.home)

    @property
    def history_dir(self) -> Path:
        """Daily partitions of labelled payment history (Parquet)."""
        return history_dir(self.home)

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"


def model_dir(home: Path) -> Path:
    """Where the model registry lives under a PAYMENT_HOME."""
    return home / "models"


def history_dir(home: Path) -> Path:
    """Where the labelled history partitions live under a PAYMENT_HOME."""
    return home / "history"


class SettingsError(ValueError):
    """An environment variable holds a value the platform cannot use; the text names it."""


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {text!r}") from None
    if value < 1:
        raise SettingsError(f"{name} must be at least 1, got {value}")
    return value


def redact_url(url: str) -> str:
    """The URL with its password masked, safe to print or log."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # not a URL at all: show nothing of it
        return "<unparseable database URL>"
