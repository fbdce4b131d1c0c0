"""The fraud operations console: a web application on the score store for fraud analysts.

Monitoring from pre-aggregates the console keeps itself (`rollup.py`; read by `lifetime_totals.py`,
`window_aggregates.py` and `recent_windows.py`), one card's investigation, a streamed CSV export, and a review
queue (`review_cases.py`, `leases.py`) whose verdicts go out as labels (`verdicts.py`). The pages are in
`pages/`; `payment-platform console` serves them; `python -m payment_platform.console.bench` measures every
page on 5 million rows.
"""
