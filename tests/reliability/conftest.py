"""Fixtures shared with the core tests: in-process daemons. (The SMTP sink, the relay,
comes from tests/conftest.py.)"""

from tests.core.conftest import daemon, make_daemon  # noqa: F401 - pytest fixtures
