"""What the platform reads off the messages the Kafka client hands it."""

from __future__ import annotations

from typing import cast

from confluent_kafka import Message


def position(message: Message) -> tuple[str, int, int]:
    """The topic, partition and offset of a message the client handed over: a consumed record, the end of a
    partition, or a delivery report (whose partition and offset are negative when the record never got one).

    confluent-kafka types all three Optional because a Message can be built by hand; the client itself always
    sets them, except on errors that belong to no partition (a broker down): ask those for nothing here.
    Only a cast, no check: the scorer calls this for every message it consumes.
    """
    return cast("tuple[str, int, int]", (message.topic(), message.partition(), message.offset()))
