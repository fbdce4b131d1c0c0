"""The scorer's running totals: reported as a progress line, recorded in `scorer_status`, returned at the end."""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from dataclasses import dataclass, field


@dataclass
class ScorerStats:
    consumed: int = 0  # payment messages read from the payments topic
    scored: int = 0  # rows written
    duplicates: int = 0  # payments seen again with the same content
    conflicts: int = 0  # payments seen again with different content (dead-lettered)
    invalid: int = 0  # messages dead-lettered for breaking the contract
    labels: int = 0
    mis_keyed: int = 0  # payments whose key was not their customer_id
    decisions: int = 0  # decision records sent
    orphan_labels: int = 0  # labels still without their payment a week after their labelled_at
    batches: int = 0
    buffered: int = 0  # payments waiting for event time to pass
    waiting_on: str = ""  # what held payments back at the last progress report
    lag: int | None = None
    model_version: str | None = None
    interrupted: bool = False  # stopped by SIGINT/SIGTERM (a run terminated from the UI)
    started: float = field(default_factory=time.monotonic)
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None))
    scorer_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{int(time.time())}")
    by_status: dict[str, int] = field(default_factory=dict)

    @property
    def handled(self) -> int:
        """Payments done with: stored, recognised as duplicates, or dead-lettered."""
        return self.scored + self.duplicates + self.conflicts + self.invalid

    @property
    def rate(self) -> float:
        return self.scored / max(time.monotonic() - self.started, 1e-9)

    def summary(self) -> str:
        lag = "?" if self.lag is None else f"{self.lag:,}"
        line = (
            f"scored {self.scored:,} payments ({self.rate:,.0f}/s), {self.invalid:,} to DLQ, "
            f"{self.duplicates:,} duplicates, {self.conflicts:,} conflicting duplicates, {self.labels:,} labels, "
            f"{self.mis_keyed:,} not keyed by card, {self.orphan_labels:,} labels without their payment, "
            f"consumer lag ~{lag}"
        )
        if self.buffered:
            line += f"; {self.buffered:,} payments held for event time" + (
                f" (waiting on {self.waiting_on})" if self.waiting_on else ""
            )
        return line

    def status_row(self, consumer_group: str, running: bool) -> dict[str, object]:
        """This scorer's row of `scorer_status`."""
        return {
            "scorer_id": self.scorer_id,
            "consumer_group": consumer_group,
            "started_at": self.started_at,
            "running": running,
            "consumed": self.consumed,
            "scored": self.scored,
            "dead_lettered": self.invalid + self.conflicts,
            "labels": self.labels,
            "payments_per_s": round(self.rate, 1),
            "consumer_lag": self.lag,
            "model_version": self.model_version,
            "orphan_labels": self.orphan_labels,
            "mis_keyed": self.mis_keyed,
        }
