"""The console's pages, one module for each part of the console, assembled here into its routes (`PAGES`).

Each page reads what it shows through the query modules and renders one template. Parameters arrive as
text and are checked in `params` (whitelists and ranges); nothing of them reaches SQL but as a bound value.
"""

from __future__ import annotations

from payment_platform.console.pages.access import login, login_form, logout
from payment_platform.console.pages.export import export_csv, export_form
from payment_platform.console.pages.investigation import card
from payment_platform.console.pages.monitoring import overview, risk, scorer_health
from payment_platform.console.pages.review import case, give_verdict, queue, release_case, renew_lease, take_case
from payment_platform.console.web import Page

PAGES: list[Page] = [
    Page("/", overview),
    Page("/risk", risk),
    Page("/health", scorer_health),
    Page("/card", card),
    Page("/queue", queue),
    Page("/case", case),
    Page("/case/take", take_case, method="POST", needs_analyst=True),
    Page("/case/renew", renew_lease, method="POST", needs_analyst=True),
    Page("/case/release", release_case, method="POST", needs_analyst=True),
    Page("/case/verdict", give_verdict, method="POST", needs_analyst=True),
    Page("/export", export_form),
    Page("/export.csv", export_csv),
    Page("/login", login_form, login_page=True),
    Page("/login", login, method="POST", login_page=True),
    Page("/logout", logout, method="POST"),
]
