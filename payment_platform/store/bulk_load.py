"""Bulk loading of scored rows into MySQL/MariaDB with `LOAD DATA LOCAL INFILE`.

The fastest way into InnoDB from a client: the rows travel as one tab-separated file per batch instead of
one escaped SQL literal per value, which costs the client far less Python per row than `executemany`.
The statement is a constant (nothing of a row is ever SQL); `IGNORE` keeps the first stored row of a
`transaction_id`, like `INSERT IGNORE`. The server must allow it (`local_infile=ON`, MariaDB's default;
MySQL 8 needs `--local-infile=ON`), and the client asks for it with PyMySQL's `local_infile=True`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

# Field escaping of LOAD DATA's defaults (ESCAPED BY '\\'): the escape, the separators, NUL and CR.
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\0": "\\0", "\r": "\\r"})
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\0\r]")

# Codes of the server refusing LOAD DATA LOCAL (client or server side switched off).
LOCAL_INFILE_REFUSED = {1148, 2068, 3948}


def tsv_field(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_TSV_ESCAPES)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(" ")
    return str(value)


def tsv(rows: Sequence[Sequence[object]]) -> bytes:
    """The rows as LOAD DATA's default text format: tab-separated, newline-terminated, UTF-8."""
    field = tsv_field
    return "".join("\t".join([field(value) for value in row]) + "\n" for row in rows).encode("utf-8")


def tsv_text_column(values: list[str]) -> list[str]:
    """A column of strings, escaped only if any of them needs it (one scan of the whole column)."""
    if _NEEDS_ESCAPE.search("".join(values)) is None:
        return values
    return [value.translate(_TSV_ESCAPES) for value in values]


def tsv_columns(columns: Sequence[Iterable[str]]) -> bytes:
    """Columns of ready field texts joined into LOAD DATA's text format: the per-row work runs in C."""
    return ("\n".join(map("\t".join, zip(*columns, strict=True))) + "\n").encode("utf-8")


def load_data_statement(table: str, columns: Sequence[str], path: Path) -> str:
    """The constant statement for one spool file: the path is the writer's own, never from a row."""
    return (
        f"LOAD DATA LOCAL INFILE '{path.as_posix()}' IGNORE INTO TABLE {table} CHARACTER SET utf8mb4 "
        f"FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({', '.join(columns)})"
    )


SPOOL_PREFIX = "payment-platform-spool-"


def spool_path() -> Path:
    """A private file for one writer's batches, in a folder of this process's own (in memory-backed /dev/shm
    where there is one). Folders left by processes that are gone (killed) are removed first: a scorer killed
    with SIGKILL cannot clean up after itself, its next start does."""
    base = (
        Path("/dev/shm")
        if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK)
        else Path(tempfile.gettempdir())
    )
    remove_stale_spools(base)
    folder = Path(tempfile.mkdtemp(prefix=f"{SPOOL_PREFIX}{os.getpid()}-", dir=base))
    return folder / "batch.tsv"


def remove_spool(path: Path) -> None:
    """Remove a spool file and its folder."""
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()


def remove_stale_spools(base: Path) -> None:
    for folder in base.glob(f"{SPOOL_PREFIX}*"):
        pid = folder.name.removeprefix(SPOOL_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
