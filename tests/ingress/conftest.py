"""Fixtures for the IMAP ingress tests: a real Dovecot per test, a spool, a config."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailbot.config import ImapIngressConfig
from mailbot.ingress.imap import ImapIngress
from mailbot.spool import Spool

from tests.support.dovecot import Dovecot, find_program
from tests.support.imap import LogWatch


def _require_dovecot() -> None:
    if find_program("dovecot") is None:
        message = ("dovecot not found: install it with `apt-get install -y dovecot-imapd` "
                   "to run the IMAP tests against a real server")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def make_dovecot() -> Iterator[Callable[..., Dovecot]]:
    """Start private Dovecot instances (keyword arguments as for Dovecot())."""
    _require_dovecot()
    started: list[Dovecot] = []

    def make(**kwargs) -> Dovecot:
        server = Dovecot(**kwargs)
        started.append(server)
        server.start()
        return server

    yield make
    for server in started:
        server.remove()


@pytest.fixture
def dovecot(make_dovecot) -> Dovecot:
    return make_dovecot()


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool")


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "db" / "imap-state.json"


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., ImapIngressConfig]:
    """An ImapIngressConfig for a Dovecot instance; keyword arguments override keys."""

    def make(server: Dovecot, password: str | None = None, **overrides) -> ImapIngressConfig:
        secret = tmp_path / f"imap-password-{server.port}"
        secret.write_text((server.password if password is None else password) + "\n")
        secret.chmod(0o600)
        base = ImapIngressConfig(
            host=server.host, port=server.port, tls="none", username=server.user,
            password_file=str(secret), connect_timeout=10,
        )
        return dataclasses.replace(base, **overrides)

    return make


@pytest.fixture
def make_ingress(spool: Spool, state_path: Path) -> Callable[..., ImapIngress]:
    """An ImapIngress with test-sized backoff and wake-up intervals."""

    def make(config: ImapIngressConfig, **kwargs) -> ImapIngress:
        kwargs.setdefault("backoff_initial", 0.1)
        kwargs.setdefault("backoff_max", 0.5)
        kwargs.setdefault("wake_interval", 0.2)
        return ImapIngress(config, spool, state_path=state_path,
                           stop=threading.Event(), **kwargs)

    return make


@pytest.fixture
def logwatch() -> Iterator[LogWatch]:
    watch = LogWatch()
    logger = logging.getLogger("mailbot.ingress.imap")
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(watch)
    yield watch
    logger.removeHandler(watch)
    logger.setLevel(old_level)
