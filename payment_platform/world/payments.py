"""The payments of one day as parallel numpy arrays, and their conversion to the payment frame.

Generators produce ``Payments`` (integers and floats only, cheap to concatenate); strings and
timestamps are made once per day, vectorised, when the frame is built.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import pandas as pd

DAY_US = 86_400 * 1_000_000
MAX_AMOUNT = 1_000_000.0
PAYMENT_FRAME_COLUMNS = (
    "transaction_id",
    "customer_id",
    "terminal_id",
    "amount",
    "currency",
    "event_time",
    "is_fraud",
    "fraud_scenario",
)


class Scenario(IntEnum):
    """Why a payment is fraud; LEGIT (0) when it is not."""

    LEGIT = 0
    COMPROMISED_TERMINAL = 1
    COMPROMISED_CARD = 2
    CARD_TESTING = 3
    AMOUNT_OUTLIER = 4

    @property
    def label(self) -> str:
        return "" if self is Scenario.LEGIT else self.name.lower()


SCENARIO_LABELS = np.array([scenario.label for scenario in Scenario], dtype=object)


@dataclass(frozen=True)
class Payments:
    """Payments of one day: card and terminal indices, amounts, microseconds since midnight UTC."""

    card: np.ndarray  # int64
    terminal: np.ndarray  # int64
    amount: np.ndarray  # float64, not yet rounded
    offset_us: np.ndarray  # int64 in [0, DAY_US)
    scenario: np.ndarray  # int8 Scenario codes

    @staticmethod
    def of(
        card: np.ndarray, terminal: np.ndarray, amount: np.ndarray, offset_us: np.ndarray, scenario: Scenario
    ) -> Payments:
        """Payments that all share one scenario."""
        return Payments(
            card=np.asarray(card, dtype=np.int64),
            terminal=np.asarray(terminal, dtype=np.int64),
            amount=np.asarray(amount, dtype=np.float64),
            offset_us=np.asarray(offset_us, dtype=np.int64),
            scenario=np.full(len(card), scenario, dtype=np.int8),
        )

    @staticmethod
    def concat(parts: list[Payments]) -> Payments:
        return Payments(
            card=np.concatenate([p.card for p in parts]),
            terminal=np.concatenate([p.terminal for p in parts]),
            amount=np.concatenate([p.amount for p in parts]),
            offset_us=np.concatenate([p.offset_us for p in parts]),
            scenario=np.concatenate([p.scenario for p in parts]),
        )

    def __len__(self) -> int:
        return len(self.card)


def _prefixed_numbers(prefix: str, numbers: np.ndarray, width: int, suffix: str = "") -> pd.Series:
    """Vectorised f"{prefix}{number:0{width}d}{suffix}" (string kernels, no Python loop)."""
    digits = pd.Series(numbers, dtype=np.int64).astype("str").str.zfill(width)
    return (prefix + digits + suffix).astype("str")


def payment_frame(payments: Payments, day: dt.date, world_tag: str) -> pd.DataFrame:
    """The payment frame (columns as PAYMENT_FRAME_COLUMNS): sorted by event time, ids numbered in that order."""
    order = np.argsort(payments.offset_us, kind="stable")
    midnight_us = (day - dt.date(1970, 1, 1)).days * DAY_US
    event_us = midnight_us + payments.offset_us[order]
    scenario = payments.scenario[order]
    amount = np.clip(np.round(payments.amount[order], 2), 0.01, MAX_AMOUNT)
    n = len(order)
    return pd.DataFrame(
        {
            "transaction_id": _prefixed_numbers(f"{day:%Y%m%d}-", np.arange(n), 7, f"-{world_tag}"),
            "customer_id": _prefixed_numbers("C", payments.card[order], 7),
            "terminal_id": _prefixed_numbers("T", payments.terminal[order], 7),
            "amount": amount,
            "currency": pd.Series("EUR", index=pd.RangeIndex(n), dtype="str"),
            "event_time": pd.to_datetime(event_us, unit="us", utc=True).astype("datetime64[us, UTC]"),
            "is_fraud": (scenario != Scenario.LEGIT).astype(np.int8),
            "fraud_scenario": pd.Series(SCENARIO_LABELS[scenario], dtype="str"),
        }
    )
