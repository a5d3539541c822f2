"""Fixtures shared with the core tests: the SMTP sink (the relay) and in-process daemons."""

from tests.core.conftest import daemon, make_daemon, sink  # noqa: F401 - pytest fixtures
