"""Platform configuration read from the environment (CONTRACTS §3), in one place."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_HOME = "./.payment_platform"


@dataclass(frozen=True)
class Settings:
    """Where the platform's services and local state live."""

    home: Path
    kafka_bootstrap: str
    db_url: str
    consumer_group: str
    payment_topic: str
    labels_topic: str
    dlq_topic: str
    decisions_topic: str
    repartition: bool = True  # PAYMENT_REPARTITION=off: producers key by customer_id, no repartition topic
    scorers: int = 1  # PAYMENT_SCORERS: scoring runs the keep_scoring sensor keeps alive

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("PAYMENT_HOME") or DEFAULT_HOME).expanduser().resolve()
        return cls(
            home=home,
            kafka_bootstrap=env.get("PAYMENT_KAFKA_BOOTSTRAP") or "127.0.0.1:9092",
            db_url=env.get("PAYMENT_DB_URL") or f"sqlite:///{home / 'payments.db'}",
            consumer_group=env.get("PAYMENT_CONSUMER_GROUP") or "payment-scorer",
            payment_topic=env.get("PAYMENT_TOPIC") or "payments",
            labels_topic=env.get("PAYMENT_LABELS_TOPIC") or "payment-labels",
            dlq_topic=env.get("PAYMENT_DLQ_TOPIC") or "payments.dlq",
            decisions_topic=env.get("PAYMENT_DECISIONS_TOPIC") or "payments.decisions",
            repartition=(env.get("PAYMENT_REPARTITION") or "on").lower() not in ("off", "0", "false", "no"),
            scorers=_positive_int(env, "PAYMENT_SCORERS", 1),
        )

    def as_environment(self) -> dict[str, str]:
        """Every variable of CONTRACTS §3 with its default filled in.

        Dagster binds its resources to these variables (`dg.EnvVar`), resolved when a run or a sensor
        uses them: a process that runs Dagster code gets them all, so the embedded defaults work there
        too, and the UI shows the variable's name, never its value."""
        return {
            "PAYMENT_HOME": str(self.home),
            "PAYMENT_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "PAYMENT_DB_URL": self.db_url,
            "PAYMENT_CONSUMER_GROUP": self.consumer_group,
            "PAYMENT_TOPIC": self.payment_topic,
            "PAYMENT_LABELS_TOPIC": self.labels_topic,
            "PAYMENT_DLQ_TOPIC": self.dlq_topic,
            "PAYMENT_DECISIONS_TOPIC": self.decisions_topic,
            "PAYMENT_SCORERS": str(self.scorers),
            "PAYMENT_REPARTITION": "on" if self.repartition else "off",
        }

    @property
    def model_dir(self) -> Path:
        """The versioned model registry."""
        return model_dir(self.home)

    @property
    def history_dir(self) -> Path:
        """Daily partitions of labelled payment history (Parquet)."""
        return history_dir(self.home)

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"


def model_dir(home: Path) -> Path:
    """Where the model registry lives under a PAYMENT_HOME."""
    return home / "models"


def history_dir(home: Path) -> Path:
    """Where the labelled history partitions live under a PAYMENT_HOME."""
    return home / "history"


class SettingsError(ValueError):
    """An environment variable holds a value the platform cannot use; the text names it."""


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {text!r}") from None
    if value < 1:
        raise SettingsError(f"{name} must be at least 1, got {value}")
    return value


# Query parameters whose values are plain connection options, shown as they are. Every other value is
# masked: drivers take passwords, tokens, key files and whole connection strings (odbc_connect) there.
HARMLESS_QUERY_PARAMETERS = frozenset(
    {"charset", "collation", "unix_socket", "connect_timeout", "read_timeout", "write_timeout", "sslmode", "driver"}
)
MASK = "***"
_UNPARSEABLE = "<unparseable database URL>"
# A token of 24+ characters mixing upper case, lower case and digits, or of 32+ hex digits, or a JWT:
# generated keys look like that, and host, user and database names practically never do.
_SECRET_LOOKING = (
    re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]+)?"),  # a JWT
    re.compile(r"(?<![A-Za-z0-9])[0-9A-Fa-f]{32,}(?![A-Za-z0-9])"),  # a hex key
    re.compile(r"(?=[A-Za-z0-9+=_~-]*[A-Z])(?=[A-Za-z0-9+=_~-]*[a-z])(?=[A-Za-z0-9+=_~-]*[0-9])[A-Za-z0-9+=_~-]{24,}"),
)
_MIN_SCRUBBED = 3  # shorter values would garble a message wherever their letters occur


def redact_url(url: str) -> str:
    """The URL with every credential-bearing part masked, safe to print or log.

    Masked: the password; the value of every query parameter not in HARMLESS_QUERY_PARAMETERS (keys
    are kept, so the reader sees which options are set); and any token in the user, host, database or
    a shown value that looks like a generated secret. A password with an unencoded `@` spills into the
    parsed host; only the part after its last `@` is shown. A string that is not a URL shows nothing.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        return _UNPARSEABLE
    host = parsed.host.rpartition("@")[2] if parsed.host else parsed.host
    username = _mask_tokens(parsed.username) if parsed.username else parsed.username
    database = _mask_tokens(parsed.database) if parsed.database else parsed.database
    base = parsed.set(username=username, host=host and _mask_tokens(host), database=database, query={})
    shown = base.render_as_string(hide_password=True).replace(quote(MASK, safe=""), MASK)
    pairs = [
        f"{quote_plus(key)}={_shown_query_value(key, value)}"
        for key, values in parsed.query.items()
        for value in ((values,) if isinstance(values, str) else values)
    ]
    return shown + ("?" + "&".join(pairs) if pairs else "")


def redact_text(text: str, url: str) -> str:
    """A message (e.g. a driver's error) with every secret of `url` masked, in every spelling.

    The secrets are those redact_url masks, as written, percent-encoded and `+`-encoded. A URL that
    cannot be parsed has no known parts: every piece of it (between `:/@?&=#;`) is treated as secret.
    """
    if url:
        text = text.replace(url, redact_url(url))
    secrets = set(_url_secrets(url))
    secrets |= {form for secret in list(secrets) for form in (quote(secret, safe=""), quote_plus(secret))}
    for secret in sorted((s for s in secrets if len(s) >= _MIN_SCRUBBED), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _mask_tokens(text)


def _shown_query_value(key: str, value: str) -> str:
    if key.lower() not in HARMLESS_QUERY_PARAMETERS:
        return MASK
    return quote_plus(_mask_tokens(value), safe="/*")


def _mask_tokens(text: str) -> str:
    """Text with every token that looks like a generated secret replaced by the mask."""
    for pattern in _SECRET_LOOKING:
        text = pattern.sub(MASK, text)
    return text


def _url_secrets(url: str) -> list[str]:
    """The parts of a URL redact_url masks, decoded; for a URL that cannot be parsed, all its pieces."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        scheme, _, rest = url.partition("://")
        return [piece for piece in re.split(r"[:/@?&=#;\s]+", rest or scheme) if piece]
    found = [parsed.password or ""]
    if parsed.host and "@" in parsed.host:
        found.append(parsed.host.rpartition("@")[0])
    for key, values in parsed.query.items():
        if key.lower() in HARMLESS_QUERY_PARAMETERS:
            continue
        for value in (values,) if isinstance(values, str) else values:
            found.append(value)
            # a connection string in a value (odbc_connect): its own values may surface alone
            found += [item.partition("=")[2].strip("{} ") for item in re.split(r"[;&]", value) if "=" in item]
    for part in (parsed.username, parsed.host, parsed.database):
        found += [match.group() for pattern in _SECRET_LOOKING for match in pattern.finditer(part or "")]
    return [secret for secret in found if secret]
