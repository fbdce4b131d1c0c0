"""The fraud operations console: a web application on the score store for fraud analysts.

Monitoring from pre-aggregates the console keeps itself (`rollup.py`), one card's investigation, a streamed
CSV export, and a review queue whose verdicts go out as labels (`desk.py`). `payment-platform console` serves
it; `python -m payment_platform.console.bench` measures every page on 5 million rows.
"""
