"""The console's bench: every page timed over HTTP on MariaDB with millions of rows in `scored_transactions`.

`python -m payment_platform.console.bench` runs it (`__main__`): `database` makes and fills the store, `server`
starts the console under test and speaks HTTP to it, `timing` times each page and the write path.
"""

from __future__ import annotations

import datetime as dt
import sys


def say(text: str) -> None:
    """A progress line on stderr, with the time: a run takes minutes."""
    print(f"[{dt.datetime.now():%H:%M:%S}] {text}", file=sys.stderr, flush=True)
