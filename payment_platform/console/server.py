"""Assembling the console from the platform's settings, and serving it with uvicorn."""

from __future__ import annotations

import logging

import uvicorn
from starlette.applications import Starlette

from payment_platform.console.accounts import Accounts
from payment_platform.console.config import ConsoleConfig
from payment_platform.console.maintenance import MaintenanceProcess
from payment_platform.console.models import ModelCatalog
from payment_platform.console.pages import PAGES
from payment_platform.console.sessions import SessionSigner, session_secret
from payment_platform.console.store import open_console_store
from payment_platform.console.verdict_labels import KafkaLabelSink
from payment_platform.console.web import Console, build_app
from payment_platform.settings import Settings, redact_url

logger = logging.getLogger(__name__)


def build_console(settings: Settings, config: ConsoleConfig, *, maintain: bool = True) -> Console:
    """The console on the configured store, registry and broker. Raises StoreUnavailable (redacted URL) or
    AccountsFileError."""
    store = open_console_store(settings.db_url)
    return Console(
        config=config,
        store=store,
        models=ModelCatalog(settings.model_dir),
        labels=KafkaLabelSink(settings.kafka_bootstrap, settings.labels_topic),
        accounts=Accounts(config.users_file),
        signer=SessionSigner(session_secret(settings.home)),
        store_name=redact_url(settings.db_url),
        labels_topic=settings.labels_topic,
        maintenance=MaintenanceProcess(settings.db_url) if maintain else None,
    )


def console_app(settings: Settings, config: ConsoleConfig) -> Starlette:
    return build_app(build_console(settings, config), PAGES)


def serve(settings: Settings, config: ConsoleConfig) -> None:
    """Serve in the foreground until interrupted."""
    app = console_app(settings, config)
    access = "pages readable without a login" if config.open_reading else "every page needs a login"
    logger.info(
        "fraud operations console on http://%s:%d (%s) reading %s",
        config.host,
        config.port,
        access,
        redact_url(settings.db_url),
    )
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning", access_log=False, proxy_headers=False)
