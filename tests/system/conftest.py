"""Fixtures for the system tests behind an MTA: a private Postfix per test, mailbot beside it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import DaemonProcess

from tests.support.postfix import Postfix, Route, find_program

_INSTALL = ("install them with `apt-get install -y postfix swaks` (preseed "
            "`postfix postfix/main_mailer_type select No configuration` first so the "
            "package leaves the system's mail alone); `make test` does both")


def _require_postfix() -> None:
    """These tests prove docs/deploy.md against a real Postfix: without one they fail,
    naming what is missing, rather than pass by skipping."""
    missing = [p for p in ("postfix", "postqueue", "swaks") if find_program(p) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: {_INSTALL}", pytrace=False)
    if os.geteuid() != 0:
        pytest.fail("the Postfix recipe tests need root: Postfix's master starts as root "
                    "and the pipe transport switches to an unprivileged user", pytrace=False)


@pytest.fixture
def make_postfix() -> Iterator[Callable[[Route], Postfix]]:
    """Start private Postfix instances; each is stopped and removed afterwards."""
    _require_postfix()
    started: list[Postfix] = []

    def make(route: Route) -> Postfix:
        server = Postfix(route)
        started.append(server)
        server.start()
        return server

    yield make
    for server in started:
        server.remove()


@pytest.fixture
def bot_dir() -> Iterator[Path]:
    """mailbot's config and storage for one test, somewhere the pipe user can reach
    (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="mbbot-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    """`mailbot serve` processes a test started; terminated afterwards, even on failure."""
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.terminate()
