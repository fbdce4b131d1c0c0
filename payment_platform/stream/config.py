"""The scorer's configuration: one object, built from the platform settings in one place."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from payment_platform.settings import Settings

_TOPIC_UNSAFE = re.compile(r"[^a-zA-Z0-9._-]")


@dataclass(frozen=True)
class ScorerConfig:
    """Everything a scorer process needs to know.

    - `repartition`: route payments through the platform's card-keyed topic, so that a payment is scored
      the same whatever key its producer gave it (off: producers must key by customer_id);
    - `max_idle_ms`: how long a partition at its end may hold the others back before it counts as idle,
      as Kafka Streams' max.task.idle.ms: the wait a live payment may pay for the same decisions on replay;
    - `poll_timeout_s`: the longest a consume call waits: small, so a light load is decided in small
      batches at once, while a heavy one fills batches of `batch_size`;
    - `max_buffered`: payments held by the event-time merge before their partitions pause;
    - `max_input_skew_ms`: event time by which an input partition may run ahead of the slowest before it
      pauses (the others must catch up anyway before anything is released);
    - `delivery_timeout_ms`: how long the client tries to deliver a record (a decision, a dead letter, a
      re-keyed payment) before it reports a failure; the scorer then sends it again, offsets held.
    """

    bootstrap: str
    consumer_group: str
    payment_topic: str
    labels_topic: str
    dlq_topic: str
    decisions_topic: str
    db_url: str
    model_dir: Path
    repartition: bool = True
    batch_size: int = 5_000
    poll_timeout_s: float = 0.002
    max_idle_ms: int = 20
    progress_interval_s: float = 10.0
    heartbeat_s: float = 1.0
    max_buffered: int = 200_000
    max_input_skew_ms: int = 3_600_000
    delivery_timeout_ms: int = 30_000
    orphan_check_s: float = 300.0

    @property
    def by_card_topic(self) -> str:
        """The card-keyed repartition topic, owned by the scorer group."""
        return _TOPIC_UNSAFE.sub("_", f"{self.consumer_group}.{self.payment_topic}.by-card")

    @property
    def shard_topic(self) -> str:
        """The topic whose partitions own the cards: the repartition topic, or the payments themselves."""
        return self.by_card_topic if self.repartition else self.payment_topic

    def topics(self) -> list[str]:
        """Every topic the scorer reads or writes, for creation."""
        names = [self.payment_topic, self.labels_topic, self.dlq_topic, self.decisions_topic]
        return [*names, self.by_card_topic] if self.repartition else names

    def with_overrides(self, **changes: object) -> ScorerConfig:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> ScorerConfig:
        config = cls(
            bootstrap=settings.kafka_bootstrap,
            consumer_group=settings.consumer_group,
            payment_topic=settings.payment_topic,
            labels_topic=settings.labels_topic,
            dlq_topic=settings.dlq_topic,
            decisions_topic=settings.decisions_topic,
            db_url=settings.db_url,
            model_dir=settings.model_dir,
            repartition=settings.repartition,
        )
        return config.with_overrides(**overrides)
