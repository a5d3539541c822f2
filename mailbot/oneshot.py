"""What a one-shot command does with the spool: process it and deliver what that queued,
under the writer lock, and look again after letting go.

Used by `mailbot ingest` (the MTA's pipe), `tick`, `retry` and `digest --send`; `serve`
has its own loop. Takes a built Runtime; hands on nothing (the store, outbox and spool
hold the results). Imports only what a one-message ingest needs anyway.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailbot.runtime import Runtime

# The messages read as the ingest command's, which is where an operator looks for them.
log = logging.getLogger("mailbot.ingest")


def process_and_deliver_held(rt: Runtime) -> None:
    """`process_and_deliver` by a process that holds the writer lock already."""
    try:
        process_and_deliver(rt)
    except OSError as exc:
        # Spooled durably already: the next run or the daemon will finish the work.
        log.error("spooled, processing deferred: %s", exc)


def process_spool(rt: Runtime) -> None:
    """Process what waits in the spool, under the writer lock; then look again.

    A `mailbot ingest` that finds the lock taken leaves what it spooled to the holder.
    `serve` rescans its spool every second, but a one-shot holder (another `ingest`,
    `retry`, `digest --send`, `tick`) has taken its listing already, so after letting go
    of the lock it looks again: a message spooled before that is seen now, one spooled
    after it finds the lock free. Stops when the spool is empty, when a pass changed
    nothing, or when another process holds the lock (which will do the same)."""
    seen: list[str] = []
    while True:
        waiting = rt.spool.pending()
        if not waiting or waiting == seen:  # nothing left, or nothing it could do
            return
        seen = waiting
        if not rt.take_lock():
            log.info("%d message(s) wait in the spool; the process holding the writer lock "
                     "(pid %s) will process them", len(waiting), rt.lock.holder() or "?")
            return
        try:
            process_and_deliver(rt)
        except OSError as exc:
            # Spooled durably already: the next run or the daemon will finish the work.
            log.error("spooled, processing deferred: %s", exc)
            return
        finally:
            rt.lock.release()


def process_and_deliver(rt: Runtime) -> None:
    """Process the spool while a second thread delivers what each group queued (its
    waits on the relay overlap the parsing of the next group), then one last pass."""
    stop = threading.Event()
    sender = threading.Thread(target=rt.outbox.run, args=(stop,), name="outbox",
                              daemon=True)
    sender.start()
    try:
        rt.pipeline.recover()
        rt.pipeline.process_pending()
    finally:
        stop.set()
        rt.outbox.wake.set()
        sender.join()
    rt.outbox.deliver_due()
