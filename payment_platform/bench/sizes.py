"""How much each phase of the benchmark does: the full run's sizes, and `--smoke`'s, every code path once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """How much each phase does; `--smoke` shrinks everything to seconds."""

    payments: int
    invalid: int
    naive_messages: int
    naive_seconds: float
    end_to_end: tuple[tuple[bool, bool], ...]  # (repartition, labels) of each run
    latency_rates: tuple[int, ...]
    latency_modes: tuple[bool, ...]  # repartition on / off
    latency_seconds: float
    warm_up_seconds: float
    scaling_payments: int
    scaling_processes: tuple[int, ...]
    scaling_modes: tuple[bool, ...]
    memory_cards: int
    growth_cards: int
    model_cards: int


FULL = Sizes(
    payments=300_000,
    invalid=300,
    naive_messages=2_000,
    naive_seconds=10.0,
    end_to_end=((True, True), (True, False), (False, True), (False, False)),
    latency_rates=(1_000, 5_000),
    latency_modes=(True, False),
    latency_seconds=20.0,
    warm_up_seconds=3.0,
    scaling_payments=200_000,
    scaling_processes=(1, 2, 4),
    scaling_modes=(True, False),
    memory_cards=1_000_000,
    growth_cards=20_000,
    model_cards=2_000,
)
# Every code path once, small: each figure positive, none meaningful.
SMOKE = Sizes(
    payments=5_000,
    invalid=20,
    naive_messages=200,
    naive_seconds=3.0,
    end_to_end=((True, True),),
    latency_rates=(200,),
    latency_modes=(True,),
    latency_seconds=1.0,
    warm_up_seconds=1.0,
    scaling_payments=5_000,
    scaling_processes=(2,),  # one process is the end-to-end run's
    scaling_modes=(False,),  # the repartition stage off: the end-to-end run has it on
    memory_cards=20_000,
    growth_cards=2_000,
    model_cards=500,
)
