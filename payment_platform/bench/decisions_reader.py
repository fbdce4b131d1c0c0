"""The decisions reader child of the benchmark: when each decision of a latency run became readable.

It reads the decisions topic as the system that authorises payments would, so the latency measured is
payment handed to the producer to decision readable by its consumer.
"""

from __future__ import annotations

import argparse
import os
import time

import orjson
from confluent_kafka import Consumer, TopicPartition

from payment_platform.bench.child import PROGRESS_EVERY_S, emit, stop_on_sigterm


def run_decisions(args: argparse.Namespace) -> None:
    """Read the decisions topic as the system that authorises payments would, and note when each decision
    of a run (transaction ids `<prefix><n>`) became readable here."""
    from payment_platform.kafka.clients import partition_count

    stop = stop_on_sigterm()
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": f"bench-decisions-{os.getpid()}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": args.fetch_wait_ms,
        }
    )
    partitions = partition_count(args.bootstrap, args.topic)
    consumer.assign([TopicPartition(args.topic, p, 0) for p in range(partitions)])
    consumer.consume(1, 0.5)  # the first fetch: connection and offsets ready before the parent sends
    emit("assigned", partitions=partitions)
    arrived: dict[int, float] = {}
    prefix = args.prefix
    reported = 0.0
    try:
        while not stop.is_set():
            # poll() returns as soon as one decision is there; consume(n, timeout) would wait out its
            # timeout for n. What came with it is drained without waiting.
            first = consumer.poll(0.1)
            now = time.time()
            messages = [] if first is None else [first, *consumer.consume(10_000, 0)]
            for message in messages:
                if message.error() is not None:
                    continue
                tx = orjson.loads(message.value() or b"{}").get("transaction_id", "")
                if tx.startswith(prefix):
                    arrived.setdefault(int(tx[len(prefix) :]), now)
            if now - reported >= PROGRESS_EVERY_S:
                reported = now
                emit("progress", consumed=len(arrived), handled=len(arrived))
    finally:
        consumer.close()
    emit("done", n=list(arrived), t=list(arrived.values()))
