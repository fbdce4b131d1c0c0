"""Measuring the platform on a user's own history through the live path: `backtest` (replay, score,
retrain from the store, replay the next file, score, measure) and `verify` (stored scores against their
offline rescoring)."""
