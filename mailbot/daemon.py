"""`mailbot serve`: runs the ingress, the spool worker, the outbox and the scheduler.

Threads: aiosmtpd's controller (SMTP/LMTP), optionally IMAP, the spool worker, the outbox
sender and the scheduler. SIGTERM/SIGINT stop intake first, let the worker finish the
message in hand, then stop the rest. A thread that dies (an exception nothing below it
caught, or an end nobody asked for) stops the daemon the same way, and `run_forever`
raises `ThreadDied`: `serve` then exits 70, so that `Restart=on-failure` starts it again
and the start-up recovery finishes what the thread left. Talks to systemd (READY,
WATCHDOG, STOPPING) when started with NOTIFY_SOCKET.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import socket
import threading
import time
from typing import TYPE_CHECKING, Callable

from mailbot import faults
from mailbot.runtime import Runtime

if TYPE_CHECKING:
    from mailbot.ingress.smtp import IngressController

log = logging.getLogger(__name__)

LOCK_WAIT_SECONDS = 10.0


class StartupError(Exception):
    """The daemon cannot start; the message is one line for the operator."""


class ListenError(StartupError):
    """The configured address cannot be listened on (in use, not ours, not allowed)."""


def check_can_listen(host: str, port: int) -> None:
    """ListenError if `host:port` cannot be bound, found before aiosmtpd's thread and loop
    exist: its own failure says the address twice and leaves a loop whose finaliser prints
    a traceback at exit."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            # As asyncio does: a port left in TIME_WAIT by a restart is free, one that a
            # process listens on is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                raise ListenError(f"cannot listen on {host}:{port}: {reason.lower()}") \
                    from None


class ThreadDied(Exception):
    """A thread of the daemon died; the daemon stopped. One line for the operator."""


def sd_notify(state: str) -> None:
    """Tell systemd about our state (no-op outside a Type=notify unit)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("sd_notify %s failed: %s", state.split("=")[0], exc)


def _watchdog_interval() -> float | None:
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec or os.environ.get("WATCHDOG_PID", str(os.getpid())) != str(os.getpid()):
        return None
    return int(usec) / 1e6 / 2


class Daemon:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.controller: IngressController | None = None
        self.site_changed = threading.Event()
        self.dead: list[str] = []  # threads that ended without being asked to
        # A pipe's `ingest` (or a `tick`) holds the writer lock for a moment at a time:
        # `serve` (re)started while mail flows waits for it instead of failing at once.
        self.lock_wait = LOCK_WAIT_SECONDS

    # the worker: one message at a time, oldest first
    def _work(self) -> None:
        spool, pipeline = self.rt.spool, self.rt.pipeline
        while not self.stop.is_set():
            spool.arrived.clear()
            try:
                pipeline.process_pending(self.stop)
            except OSError as exc:
                log.error("worker: cannot process now (%s); retrying in 5s", exc)
                self.stop.wait(5)
                continue
            # Also rescan each second: `mailbot ingest` may spool from another process.
            spool.arrived.wait(1.0)

    def _publish(self) -> None:
        """Republish the site after changes, at most every few seconds ([publish] dir)."""
        from mailbot.publish import publish_site

        rt = self.rt
        out = rt.config.publish.dir
        assert out is not None
        changed = self.site_changed
        changed.set()  # publish once at start
        while not self.stop.is_set():
            if not changed.wait(1.0):
                continue
            self.stop.wait(2.0)  # debounce a burst of updates into one publish
            changed.clear()
            try:
                with rt.pipeline.lock:
                    incidents = list(rt.store.live_incidents())
                everything = itertools.chain(incidents, rt.store.closed_incidents())
                publish_site(out, everything, rt.directory,
                             rt.config, rt.clock.now())
            except Exception as exc:  # noqa: BLE001 - the site must never stop the daemon
                log.error("publish to %s failed: %s", out, exc)

    def _start_thread(self, name: str, target: Callable[[], None]) -> None:
        def run() -> None:
            try:
                target()
            except BaseException:
                log.exception("thread %s died", name)
            else:
                if self.stop.is_set():
                    return
                log.error("thread %s ended on its own", name)
            # Going on without it would accept mail nobody processes (a dead worker) or
            # queue mail nobody sends: stop, and let the service manager restart us.
            self.dead.append(name)
            self.stop.set()

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def start(self) -> None:
        rt = self.rt
        deadline = time.monotonic() + self.lock_wait
        waiting = False
        while not rt.take_lock():
            if time.monotonic() >= deadline:
                raise StartupError(
                    f"another mailbot is running on {rt.config.storage.dir} "
                    f"(pid {rt.lock.holder() or '?'} held the writer lock for "
                    f"{self.lock_wait:g} s)")
            if not waiting:
                waiting = True
                log.info("pid %s holds the writer lock on %s: waiting up to %g s for it",
                         rt.lock.holder() or "?", rt.config.storage.dir, self.lock_wait)
            time.sleep(0.05)  # flock has no timeout; a one-shot holder lets go in a moment
        # Fault injection for the crash tests (MAILBOT_CRASH_AT, see faults.py): read
        # here, once, so that only a serving daemon can be armed.
        faults.arm(os.environ.get("MAILBOT_CRASH_AT"))
        rt.pipeline.recover()
        if rt.config.publish.dir is not None:
            rt.pipeline.on_change = self.site_changed.set
            self._start_thread("publish", self._publish)
        if rt.config.smtp.enabled:
            from mailbot.ingress.smtp import IngressController

            check_can_listen(rt.config.smtp.host, rt.config.smtp.port)
            controller = IngressController(rt.spool, rt.config.smtp)
            try:
                controller.start()
            except OSError as exc:
                raise ListenError(
                    f"cannot listen on {rt.config.smtp.host}:{rt.config.smtp.port}: "
                    f"{exc.strerror or exc}") from None
            except RuntimeError as exc:
                cause = exc.__cause__ or exc.__context__ or exc
                raise ListenError(
                    f"cannot listen on {rt.config.smtp.host}:{rt.config.smtp.port}: "
                    f"{getattr(cause, 'strerror', None) or cause}") from None
            self.controller = controller
            log.info("listening for %s on %s:%d", rt.config.smtp.protocol.upper(),
                     rt.config.smtp.host, rt.config.smtp.port)
        self._start_thread("worker", self._work)
        # Rescan the queue every 2 s, not only on our own wake-ups: `mailbot outbox resend`
        # runs in another process and cannot set our event, and a re-sent mail would wait
        # for the next retry timer (tests/test_outbox_relay_faults.py).
        self._start_thread("outbox", lambda: rt.outbox.run(self.stop, idle=2.0))
        scheduler = rt.scheduler
        if scheduler is not None:
            self._start_thread("scheduler", lambda: scheduler.run(self.stop))
        if rt.config.imap is not None:
            from mailbot.ingress.imap import ImapIngress

            imap = ImapIngress(rt.config.imap, rt.spool,
                               state_path=rt.config.storage.db_dir / "imap-state.json",
                               stop=self.stop)
            self._start_thread("imap", imap.run)
            log.info("watching IMAP %s@%s:%d/%s", rt.config.imap.username,
                     rt.config.imap.host, rt.config.imap.port, rt.config.imap.folder)

    def shutdown(self) -> None:
        sd_notify("STOPPING=1")
        log.info("stopping: no new mail accepted; finishing the message in hand")
        if self.controller is not None:
            self.controller.stop()
        self.stop.set()
        self.rt.spool.arrived.set()
        self.rt.outbox.wake.set()
        for thread in self.threads:
            thread.join(timeout=30)
        self.rt.lock.release()
        log.info("stopped")

    def run_forever(self) -> None:
        """Start, run until SIGTERM/SIGINT or a thread's death, stop. Raises ThreadDied
        after a death (the caller exits non-zero), StartupError if it cannot start."""

        def on_signal(signum: int, frame: object) -> None:
            log.info("received %s", signal.Signals(signum).name)
            self.stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        sd_notify("READY=1")
        watchdog = _watchdog_interval()
        try:
            while not self.stop.wait(min(watchdog or 5.0, 5.0)):
                # Only pet the watchdog while every thread is alive.
                if all(t.is_alive() for t in self.threads):
                    if watchdog:
                        sd_notify("WATCHDOG=1")
                else:
                    dead = [t.name for t in self.threads if not t.is_alive()]
                    log.error("thread(s) died: %s; stopping", ", ".join(dead))
                    self.dead.extend(n for n in dead if n not in self.dead)
                    break
        finally:
            self.shutdown()
        if self.dead:
            raise ThreadDied(f"thread(s) died: {', '.join(self.dead)}; stopped (see the "
                             "log above); a restart recovers what they left")
