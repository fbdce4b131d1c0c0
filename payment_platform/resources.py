"""Typed Dagster resources: the Kafka cluster, the score store, the model registry, the history store."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from payment_platform.model import ModelRegistry
from payment_platform.settings import Settings
from payment_platform.store.database import connect_store
from payment_platform.store.history import HistoryStore


class KafkaResource(dg.ConfigurableResource):
    """The Kafka cluster the payments arrive on, and the platform's topic names."""

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


class ModelRegistryResource(dg.ConfigurableResource):
    """The versioned model registry directory."""

    root: str

    def registry(self) -> ModelRegistry:
        return ModelRegistry(Path(self.root))


class HistoryStoreResource(dg.ConfigurableResource):
    """Daily Parquet partitions of labelled payment history."""

    root: str

    def store(self) -> HistoryStore:
        return HistoryStore(Path(self.root))


def build_resources(settings: Settings | None = None) -> dict[str, dg.ConfigurableResource]:
    """Resources from the environment; the database URL is bound as an EnvVar so the UI never shows it."""
    settings = settings or Settings.from_env()
    db_url: str | dg.EnvVar = dg.EnvVar("PAYMENT_DB_URL") if os.environ.get("PAYMENT_DB_URL") else settings.db_url
    return {
        "kafka": KafkaResource(
            bootstrap_servers=settings.kafka_bootstrap,
            consumer_group=settings.consumer_group,
            payment_topic=settings.payment_topic,
            labels_topic=settings.labels_topic,
            dlq_topic=settings.dlq_topic,
            decisions_topic=settings.decisions_topic,
        ),
        "score_store": ScoreStoreResource(url=db_url),
        "model_registry": ModelRegistryResource(root=str(settings.model_dir)),
        "history": HistoryStoreResource(root=str(settings.history_dir)),
    }
