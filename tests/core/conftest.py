import pytest

from mailbot.daemon import Daemon
from mailbot.runtime import build_runtime
from tests.core.support import free_port, load


@pytest.fixture
def make_daemon(tmp_path, sink):
    """A real daemon in this process (SMTP ingress on loopback, the sink as relay)."""
    started = []

    def make(extra: str = "", name: str = "d", **kw):
        port = free_port()
        workdir = tmp_path / name
        workdir.mkdir()
        config = load(workdir, smtp_port=port, relay_port=sink.port, extra=extra, **kw)
        rt = build_runtime(config)
        d = Daemon(rt)
        d.start()
        d.port = port
        started.append(d)
        return d

    yield make
    for d in started:
        d.shutdown()
        d.rt.close()


@pytest.fixture
def daemon(make_daemon):
    return make_daemon()
