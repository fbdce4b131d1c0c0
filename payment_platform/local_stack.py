"""The local quick start (`payment-platform dev`): broker, Dagster and a producer, started and stopped in order.

Dagster runs as its three processes (one gRPC code server, the webserver and the daemon) rather than
`dagster dev`, which is superseded in 1.13 and stops everything at once. They run in DAGSTER_HOME, so
that a `.env` in the user's working directory (e.g. the compose stack's) never overrides the shell.

A stop (Ctrl-C, SIGTERM) goes: producer; Dagster's daemon, so that no new run starts; the scoring
runs, through Dagster's run launcher, each committing its last batch and recorded as CANCELED; the
webserver and the code server; the broker.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from payment_platform.kafka.clients import ensure_topics
from payment_platform.kafka.embedded_broker import (
    dies_with_parent,
    port_is_open,
    start_embedded_broker,
    stop_embedded_broker,
)
from payment_platform.settings import Settings

logger = logging.getLogger(__name__)

CODE_LOCATION = "payment_platform"
DEFINITIONS_MODULE = "payment_platform.definitions"
PROCESS_STOP_S = 3.0  # the producer and the daemon stop well within this
IDLE_DAGSTER_STOP_S = 3.0  # the webserver and the code server, once no run is left
SCORER_STOP_S = 8.0  # the scorer commits its batch in hand within this
BACKFILL_DAYS = 14  # the recent past a fresh dev session starts with: two label delays


@dataclass
class Child:
    """A process of the stack, leader of its own process group (its children stop with it)."""

    name: str
    process: subprocess.Popen[bytes]
    log: IO[bytes] | None = None

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def stop(self, timeout_s: float = PROCESS_STOP_S, *, signalled: bool = False) -> None:
        """SIGTERM to the group (unless already sent); SIGKILL what is left of its tree after the timeout.

        The tree, not only the group: Dagster's code server runs the code in a child of its own session."""
        tree = descendants(self.process.pid)
        if not signalled:
            self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop within %.0fs: killing it", self.name, timeout_s)
        self.signal(signal.SIGKILL)
        for pid in tree | descendants(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait()
        if self.log is not None:
            self.log.close()


def descendants(pid: int) -> set[int]:
    """The processes below `pid` now, whatever session they moved to (from /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def free_local_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dagster_script(name: str) -> str:
    """A console script installed beside this interpreter (dagster-webserver, dagster-daemon)."""
    script = Path(sys.executable).parent / name
    return str(script) if script.exists() else name


WORKSPACE = """\
# Written by `payment-platform dev`: the webserver and the daemon share one gRPC code server.
load_from:
  - grpc_server:
      host: 127.0.0.1
      port: {port}
      location_name: {location}
"""


@dataclass
class LocalStack:
    """The processes of a dev session, and the order in which they start and stop."""

    settings: Settings
    ui_port: int
    rate: float | None
    backfill_days: float = BACKFILL_DAYS
    console_port: int = 8050
    broker: subprocess.Popen[bytes] | None = None
    children: dict[str, Child] = field(default_factory=dict)

    @property
    def environment(self) -> dict[str, str]:
        """The shell's environment, with every platform variable filled in and the embedded instance."""
        return {
            **os.environ,
            **self.settings.as_environment(),
            "DAGSTER_HOME": str(self.settings.dagster_home),
        }

    def start(self) -> None:
        from payment_platform.defs.operations import write_embedded_instance_config

        self.start_broker()
        ensure_topics(
            self.settings.kafka_bootstrap,
            [self.settings.payment_topic, self.settings.labels_topic, self.settings.dlq_topic],
        )
        home = write_embedded_instance_config(self.settings)
        grpc_port = free_local_port()
        (home / "workspace.yaml").write_text(WORKSPACE.format(port=grpc_port, location=CODE_LOCATION))
        self.spawn(
            "code server",
            [
                sys.executable, "-m", "dagster", "code-server", "start",
                "-h", "127.0.0.1", "-p", str(grpc_port),
                "-m", DEFINITIONS_MODULE, "-a", "defs", "--location-name", CODE_LOCATION,
            ],
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while not port_is_open("127.0.0.1", grpc_port) and time.monotonic() < deadline:
            if not self.children["code server"].alive():
                raise RuntimeError("the Dagster code server exited while loading the code: see its output above")
            time.sleep(0.2)
        workspace = str(home / "workspace.yaml")
        self.spawn(
            "webserver",
            [dagster_script("dagster-webserver"), "-h", "127.0.0.1", "-p", str(self.ui_port), "-w", workspace],
        )
        self.spawn("daemon", [dagster_script("dagster-daemon"), "run", "-w", workspace])
        from payment_platform.console.accounts import DEV_ANALYST, ensure_dev_account

        users, password_file = ensure_dev_account(self.settings.home)
        self.spawn(
            "console",
            [sys.executable, "-m", "payment_platform.cli", "console", "--port", str(self.console_port)],
            log_name="console.log",
            env={"PAYMENT_CONSOLE_USERS_FILE": os.environ.get("PAYMENT_CONSOLE_USERS_FILE", str(users))},
        )
        print(
            f"fraud operations console on http://127.0.0.1:{self.console_port}: log in as {DEV_ANALYST} with the "
            f"password in {password_file}",
            file=sys.stderr,
        )
        rate = "max" if self.rate is None else f"{self.rate:g}"
        self.spawn(
            "producer",
            [sys.executable, "-m", "payment_platform.cli", "produce", "--rate", rate,
             "--backfill-days", f"{self.backfill_days:g}"],
            log_name="producer.log",
        )  # fmt: skip

    def start_broker(self) -> None:
        host, _, port = self.settings.kafka_bootstrap.rpartition(":")
        if port_is_open(host or "127.0.0.1", int(port)):
            print(f"using the Kafka broker already listening at {self.settings.kafka_bootstrap}", file=sys.stderr)
            return
        self.broker = start_embedded_broker(port=int(port), log_path=self.settings.home / "broker.log")
        print(f"started the embedded broker at {self.settings.kafka_bootstrap}", file=sys.stderr)

    def spawn(
        self, name: str, command: list[str], log_name: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        log = open(self.settings.home / log_name, "ab") if log_name else None  # noqa: SIM115 - closed by Child.stop
        process = subprocess.Popen(
            command,
            env={**self.environment, **(env or {})},
            cwd=self.settings.dagster_home,  # never the user's directory: Dagster would load a .env there
            stdout=log,
            stderr=subprocess.STDOUT if log else None,
            start_new_session=True,
            preexec_fn=dies_with_parent(),  # only prctl: safe between fork and exec
        )
        self.children[name] = Child(name, process, log)

    def wait(self) -> int:
        """Until a process of the stack exits on its own (1 if it failed); a signal interrupts it."""
        while all(child.alive() for child in self.children.values()) and (
            self.broker is None or self.broker.poll() is None
        ):
            time.sleep(0.5)
        if self.broker is not None and self.broker.poll() is not None:
            print(f"the embedded broker exited with code {self.broker.returncode}: stopping", file=sys.stderr)
            self.broker = None
            return 1
        failed = [c.name for c in self.children.values() if c.process.returncode not in (0, None)]
        for name in failed:
            print(f"{name} exited with code {self.children[name].process.returncode}: stopping", file=sys.stderr)
        return 1 if failed else 0

    def stop(self) -> None:
        """Producer and daemon, scorers (through Dagster), webserver and code server, broker: in that order.

        The producer, the console and the daemon stop together (no new payment or verdict, no new run);
        the scoring runs are then
        terminated through the run launcher, which needs the code server; with no run left, the webserver
        and the code server have nothing to finish and get little time before they are killed."""
        started = time.monotonic()

        def step(what: str) -> None:
            print(f"stopping: {what} ({time.monotonic() - started:.1f}s)", file=sys.stderr, flush=True)

        self.stop_together(["producer", "console", "daemon"], step, PROCESS_STOP_S)
        if "code server" in self.children:
            step("scorer (terminating its Dagster run)")
            from payment_platform.defs.operations import stop_scoring_runs

            try:
                for run_id, status in stop_scoring_runs(self.settings, SCORER_STOP_S):
                    print(f"scoring run {run_id}: {status}", file=sys.stderr, flush=True)
            except Exception as exc:  # noqa: BLE001 - the rest must stop all the same
                print(f"could not stop the scoring runs through Dagster: {exc}", file=sys.stderr)
        self.stop_together(["webserver", "code server"], step, IDLE_DAGSTER_STOP_S)
        if self.broker is not None:
            step("broker")
            stop_embedded_broker(self.broker)
            self.broker = None
        step("done")

    def stop_together(self, names: list[str], step: Callable[[str], None], timeout_s: float) -> None:
        children = [self.children.pop(name) for name in names if name in self.children]
        for child in children:
            step(child.name)
            child.signal(signal.SIGTERM)
        for child in children:
            child.stop(timeout_s, signalled=True)
