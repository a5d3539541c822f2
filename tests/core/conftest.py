import pytest

from tests.core.support import SmtpSink


@pytest.fixture
def sink():
    s = SmtpSink().start()
    yield s
    s.stop()
