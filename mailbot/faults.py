"""Fault injection for the crash tests: die like `kill -9` at a named point.

`MAILBOT_CRASH_AT=<point>:<n>` (read once, by `arm`, when the daemon starts; never at
import time) makes the process kill itself with SIGKILL the n-th time it passes
`crash_point(<point>)`. `<point>:<n>:raise` raises `InjectedFault` there instead, for the
tests of what an unexpected exception does (a thread that dies must end `serve` with a
failure status). Unset, `crash_point` is one comparison: cheap enough to leave in the
hot path. The points, in the order a message meets them:

    spooled         spool.py: message file and directory entry fsync'd; no 250 sent yet
    committed       store.py: a store file replaced (hot.json: the incident changes and
                    the journal entry of one commit or group); index and outbox not yet
    index-written   store.py (appendmap.py): one Message-ID index record appended (passed
                    once per record, after its bucket's write; the other buckets, the
                    outbox and the journal clean-up not yet)
    enqueued        outbox.py: one outgoing mail queued; not yet relayed
    relay-accepted  outbox.py: the relay said 250; the sent-marker is not written
    marker-written  outbox.py: the sent-marker is appended; the queue file is not removed

tests/system/test_chaos.py kills mailbot at each of them and checks that nothing
accepted is lost and nothing is done twice.
"""

from __future__ import annotations

import os
import signal
import threading


POINTS = ("spooled", "committed", "index-written", "enqueued", "relay-accepted",
          "marker-written")

_target: str | None = None
_remaining = 0
_raise = False
_lock = threading.Lock()


class InjectedFault(RuntimeError):
    """Raised at an armed point in `raise` mode."""


def arm(spec: str | None) -> None:
    """Arm from a `<point>:<n>[:raise]` spec (None or empty: disarm). Raises ValueError
    if bad."""
    global _target, _remaining, _raise
    if not spec:
        _target, _remaining, _raise = None, 0, False
        return
    point, _, rest = spec.partition(":")
    count, _, mode = rest.partition(":")
    n = int(count or "1")
    if point not in POINTS or n < 1 or mode not in ("", "raise"):
        raise ValueError(f"MAILBOT_CRASH_AT={spec!r}: want <point>:<n>[:raise], point one "
                         "of " + ", ".join(POINTS))
    _target, _remaining, _raise = point, n, mode == "raise"
    import logging  # here: every spooling process imports this module, few arm it

    logging.getLogger(__name__).warning("fault injection armed: %s at pass %d of %r",
                "an exception" if _raise else "SIGKILL", n, point)


def crash_point(name: str) -> None:
    """Die here (SIGKILL, no cleanup, no flush) if armed for `name` and its pass is due;
    or raise InjectedFault, if armed in `raise` mode."""
    global _remaining
    if _target != name:
        return
    with _lock:
        _remaining -= 1
        if _remaining != 0:
            return
    if _raise:
        raise InjectedFault(f"injected fault at {name}")
    # SIGKILL rather than os._exit: no atexit, no buffered writes, exactly like kill -9.
    os.kill(os.getpid(), signal.SIGKILL)
