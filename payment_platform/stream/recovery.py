"""What the scorer reads back from the score store besides its writes.

- The card windows of a shard it takes over (after a restart or a rebalance), so that the first payment
  scored gets the features an uninterrupted scorer would give it.
- Every few minutes, the labels whose payment has not come: counted, shown in the progress line and the
  health row, never silently dropped.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time

from payment_platform.features import OnlineFeatures
from payment_platform.features.definitions import CARD_REACH_MS
from payment_platform.store.stream_state import card_history, newest_event_us, orphan_labels
from payment_platform.stream.sink import ScoreSink
from payment_platform.stream.stats import ScorerStats

logger = logging.getLogger(__name__)

ORPHAN_SPAN = dt.timedelta(days=90)  # labels looked at, by labelled_at
ORPHAN_AFTER = dt.timedelta(days=7)  # a label whose payment has not come this long after it is an orphan


def restore_cards(sink: ScoreSink, features: OnlineFeatures, shard: int) -> None:
    """Rebuild the cards of a newly assigned shard from the stored payments within the card windows' reach."""
    started = time.monotonic()
    newest = sink.read(lambda engine: newest_event_us(engine, shard), f"restoring shard {shard}")
    state = features.cards(shard)
    if newest is None:
        return
    since = newest - (CARD_REACH_MS + 2 * features.allowed_lateness_ms) * 1_000
    history = sink.read(lambda engine: card_history(engine, shard, since), f"restoring shard {shard}")
    state.add(history.cards, history.t_ms.tolist(), history.cents.tolist())
    logger.info(
        "cards of shard %d restored from %s stored payments in %.1fs: %s cards",
        shard,
        f"{len(history.cards):,}",
        time.monotonic() - started,
        f"{len(state):,}",
    )


def watch_orphan_labels(sink: ScoreSink, stats: ScorerStats, every_s: float, stopped: threading.Event) -> None:
    """Until `stopped`, count the orphan labels into `stats` every `every_s` seconds (a thread's target)."""
    while not stopped.wait(every_s):
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        with contextlib.suppress(Exception):  # informative only: an outage is reported by the writes
            stats.orphan_labels = orphan_labels(sink.engine, now - ORPHAN_SPAN, now - ORPHAN_AFTER)
