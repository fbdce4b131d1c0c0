"""Typed resources of the platform, bound to the environment (docs/contracts.md §3) through `dg.EnvVar`s.

The variables are read when a run or a sensor uses a resource, never when the code is loaded, and the
UI and the launchpad show their names, never their values (the database URL may hold a password).
Processes that run Dagster code get every variable with its default filled in
(`Settings.as_environment`): `payment-platform dev` and `train` do that, and so does the compose file.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from payment_platform.model import ModelRegistry
from payment_platform.settings import history_dir, model_dir
from payment_platform.store.database import connect_store
from payment_platform.store.history import HistoryStore


class KafkaResource(dg.ConfigurableResource):
    """The Kafka cluster the payments arrive on, the scorer's consumer group and the topic names."""

    bootstrap_servers: str
    consumer_group: str = "payment-scorer"
    payment_topic: str = "payments"
    labels_topic: str = "payment-labels"
    dlq_topic: str = "payments.dlq"
    decisions_topic: str = "payments.decisions"


class ScoreStoreResource(dg.ConfigurableResource):
    """The SQL database that holds every decision (SQLite locally, MySQL in production)."""

    url: str

    def engine(self) -> sa.Engine:
        return connect_store(self.url)


class PaymentHomeResource(dg.ConfigurableResource):
    """PAYMENT_HOME: the versioned model registry and the labelled history partitions."""

    path: str

    def registry(self) -> ModelRegistry:
        return ModelRegistry(model_dir(Path(self.path)))

    def history(self) -> HistoryStore:
        return HistoryStore(history_dir(Path(self.path)))


class ScorerPoolResource(dg.ConfigurableResource):
    """How many scoring runs `keep_scoring` keeps alive, all in one consumer group (PAYMENT_SCORERS)."""

    size: int = 1


@dg.definitions
def resources() -> dg.Definitions:
    """The resources every asset, check and sensor of the code location uses, bound to the environment."""
    return dg.Definitions(
        resources={
            "kafka": KafkaResource(
                bootstrap_servers=dg.EnvVar("PAYMENT_KAFKA_BOOTSTRAP"),
                consumer_group=dg.EnvVar("PAYMENT_CONSUMER_GROUP"),
                payment_topic=dg.EnvVar("PAYMENT_TOPIC"),
                labels_topic=dg.EnvVar("PAYMENT_LABELS_TOPIC"),
                dlq_topic=dg.EnvVar("PAYMENT_DLQ_TOPIC"),
                decisions_topic=dg.EnvVar("PAYMENT_DECISIONS_TOPIC"),
            ),
            "score_store": ScoreStoreResource(url=dg.EnvVar("PAYMENT_DB_URL")),
            "payment_home": PaymentHomeResource(path=dg.EnvVar("PAYMENT_HOME")),
            "scorer_pool": ScorerPoolResource(size=dg.EnvVar.int("PAYMENT_SCORERS")),
        }
    )
