"""Fixtures shared by every test package."""

from __future__ import annotations

import pytest

from tests.core.support import SmtpSink


@pytest.fixture
def sink():
    """A real SMTP sink on loopback, the relay mailbot delivers to; stopped afterwards."""
    s = SmtpSink().start()
    yield s
    s.stop()
