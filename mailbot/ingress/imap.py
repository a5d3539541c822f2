"""IMAP ingress: watch one mailbox folder and get every new message into the spool.

Takes an `ImapIngressConfig` and a `Spool`; hands on raw message bytes via
`Spool.put(raw, "imap")` and nothing else (it knows nothing of incidents).

The order of steps is what keeps mail from being lost or repeated:

1. FETCH BODY.PEEK[] (the PEEK leaves \\Seen alone) a batch of UIDs above the checkpoint.
2. `Spool.put` each message: it returns only once the bytes are fsync'd.
3. Write the checkpoint (UIDVALIDITY, highest UID taken, and the UIDs still to be marked)
   with `write_atomic`: after this a restart never fetches these UIDs again.
4. Mark them on the server (keyword, and MOVE if configured), then clear "still to mark".

A crash between 2 and 3 spools at most one batch twice (the pipeline drops duplicates
by Message-ID); a dropped connection during 4 is finished on the next connection.
A changed UIDVALIDITY (the server renumbered the folder) or an unreadable checkpoint
means a rescan of every message not carrying the processed keyword.

`run()` blocks until the `stop` event is set: it reconnects by itself with capped,
jittered exponential backoff, waits with IDLE where the server has it (NOOP first, and a
look at the folder at least every poll_interval, because servers miss some changes) and
polls where it does not, and never raises.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.parser
import email.policy
import json
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from mailbot.clock import Clock
from mailbot.config import ConfigError, ImapIngressConfig
from mailbot.durable import write_atomic
from mailbot.spool import Spool

log = logging.getLogger(__name__)

STATE_VERSION = 1
DELETED = b"\\Deleted"


class ImapSetupError(Exception):
    """Something a person must fix (password file, folder, TLS): retried only slowly."""


class ImapAuthError(ImapSetupError):
    """The server rejected the username or password."""


class SpoolError(Exception):
    """The spool could not store a message; nothing was marked on the server."""


@dataclass
class Checkpoint:
    """What `state_path` remembers between connections and restarts."""

    mailbox: str  # user@host/folder: a checkpoint for another mailbox is not reused
    uidvalidity: int
    last_uid: int  # every UID up to here is spooled (or was deliberately left alone)
    since: str | None = None  # first start with a date: SINCE applies to UIDs <= since_until
    since_until: int = 0
    unmarked: list[int] = field(default_factory=list)  # spooled, not yet flagged/moved
    version: int = STATE_VERSION
    saved_at: str = ""


class ImapIngress:
    """Watches `config.folder` and spools each new message exactly once."""

    def __init__(
        self,
        config: ImapIngressConfig,
        spool: Spool,
        state_path: Path,
        stop: threading.Event | None = None,
        clock: Clock | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        backoff_initial: float = 1.0,
        backoff_max: float = 300.0,
        wake_interval: float = 2.0,
    ) -> None:
        self.config = config
        self.spool = spool
        self.state_path = Path(state_path)
        self.stop = stop if stop is not None else threading.Event()
        self.clock = clock or Clock()
        self._ssl_context = ssl_context
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        # IDLE blocks on the socket; waking this often is how `stop` is noticed promptly.
        self._wake_interval = wake_interval
        self._random = random.Random()
        self._where = f"{config.host}:{config.port}"
        # Not the port: switching 993/implicit to 143/starttls is the same mailbox.
        self._identity = f"{config.username}@{config.host}/{config.folder}"
        self._checkpoint: Checkpoint | None = None
        self._caps: frozenset[bytes] = frozenset()
        self._connected = False  # this session got as far as SELECT
        self._settled = False  # this session finished a full sync

    # ------------------------------------------------------------------ public

    def run(self) -> None:
        """Watch the folder until `stop` is set; reconnect on any failure; never raise."""
        log.info("IMAP ingress starting: %s as %s, folder %s, tls=%s",
                 self._where, self.config.username, self.config.folder, self.config.tls)
        failures = 0
        while not self.stop.is_set():
            self._connected = self._settled = False
            try:
                self._serve()
                break  # _serve returns only when stop is set
            except ImapAuthError as exc:
                delay = self._slow_delay()
                log.error("IMAP login as %s on %s rejected (%s); check [ingress.imap] "
                          "username and password_file/password_env; retrying in %.0fs",
                          self.config.username, self._where, exc, delay)
            except ImapSetupError as exc:
                delay = self._slow_delay()
                log.error("IMAP %s: %s; retrying in %.0fs", self._where, exc, delay)
            except Exception as exc:
                failures = 1 if self._settled else failures + 1
                delay = self._backoff(failures)
                expected = isinstance(exc, (IMAPClientError, OSError, SpoolError))
                if self.stop.is_set():
                    break
                if isinstance(exc, SpoolError):
                    what = f"cannot store mail in the spool ({exc})"
                elif self._connected:
                    what = f"connection to {self._where} lost ({_describe(exc)})"
                else:
                    what = f"cannot connect to {self._where} ({_describe(exc)})"
                log.log(logging.WARNING if expected else logging.ERROR,
                        "IMAP %s; reconnecting in %.1fs", what, delay,
                        exc_info=not expected)
            if self.stop.wait(delay):
                break
        log.info("IMAP ingress stopped (%s, folder %s)", self._where, self.config.folder)

    def run_once(self) -> int:
        """Connect, spool everything new, mark it, disconnect; return how many were spooled.

        Raises ImapAuthError, ImapSetupError, SpoolError, IMAPClientError or OSError.
        """
        with self._session() as client:
            return self._sync(client)

    # ------------------------------------------------------------------ session

    def _serve(self) -> None:
        with self._session() as client:
            announced = False
            while not self.stop.is_set():
                self._sync(client)
                self._settled = True
                if self.stop.is_set():
                    break
                if b"IDLE" in self._caps:
                    if not announced:
                        log.info("IMAP idle on %s (waiting for new mail)", self.config.folder)
                        announced = True
                    self._idle(client)
                else:
                    if not announced:
                        log.info("IMAP polling %s every %ds (server has no IDLE)",
                                 self.config.folder, self.config.poll_interval)
                        announced = True
                    if self.stop.wait(self.config.poll_interval):
                        break
                    # A server may answer SEARCH from its last view of the folder; NOOP is
                    # the RFC 3501 way to poll, making it look again (Dovecot needs this).
                    log.debug("IMAP polling %s for new mail", self.config.folder)
                    client.noop()

    @contextlib.contextmanager
    def _session(self) -> Iterator[IMAPClient]:
        client = self._connect()
        clean = False
        try:
            self._open_folder(client)
            yield client
            clean = True
        finally:
            _close(client, polite=clean)

    def _connect(self) -> IMAPClient:
        cfg = self.config
        try:
            password = cfg.password()
        except ConfigError as exc:
            raise ImapSetupError(str(exc)) from None
        if not password:
            raise ImapSetupError("no password: set password_file or password_env "
                                 "in [ingress.imap]")
        context = self._ssl_context or ssl.create_default_context(
            cafile=cfg.ca_file or None)
        try:
            client = IMAPClient(cfg.host, cfg.port, ssl=cfg.tls == "implicit",
                                ssl_context=context if cfg.tls == "implicit" else None,
                                timeout=cfg.connect_timeout)
        except ssl.SSLCertVerificationError as exc:
            raise ImapSetupError(f"TLS certificate not trusted: {exc.verify_message}") from None
        try:
            if cfg.tls == "starttls":
                if not client.has_capability("STARTTLS"):
                    raise ImapSetupError("server does not offer STARTTLS (tls = \"starttls\"); "
                                         "try tls = \"implicit\" on port 993")
                try:
                    client.starttls(context)
                except ssl.SSLCertVerificationError as exc:
                    raise ImapSetupError(
                        f"TLS certificate not trusted: {exc.verify_message}") from None
            try:
                client.login(cfg.username, password)
            except LoginError as exc:
                text = str(exc)
                # RFC 5530: UNAVAILABLE is the server's own trouble, not a bad password.
                if "UNAVAILABLE" in text.upper():
                    raise IMAPClientError(f"login temporarily refused: {text}") from None
                raise ImapAuthError(_server_text(text)) from None
            self._caps = frozenset(client.capabilities())
            _enable_keepalive(client.socket())
        except BaseException:
            _close(client, polite=False)
            raise
        return client

    def _open_folder(self, client: IMAPClient) -> None:
        cfg = self.config
        try:
            info = client.select_folder(cfg.folder)
        except IMAPClientAbortError:
            raise
        except IMAPClientError as exc:
            if not client.folder_exists(cfg.folder):
                raise ImapSetupError(f"folder {cfg.folder!r} does not exist") from None
            # It exists, so the refusal is the server's passing trouble (INUSE, UNAVAILABLE).
            raise IMAPClientError(f"cannot select folder {cfg.folder!r}: {exc}") from None
        if b"READ-WRITE" not in info:
            raise ImapSetupError(f"folder {cfg.folder!r} is read-only; mailbot must be able "
                                 "to mark processed messages")
        self._connected = True
        uidvalidity = info[b"UIDVALIDITY"]
        log.info("IMAP connected to %s as %s (tls=%s); %s: %d messages, UIDVALIDITY %d",
                 self._where, cfg.username, cfg.tls, cfg.folder, info.get(b"EXISTS", 0),
                 uidvalidity)
        permanent = info.get(b"PERMANENTFLAGS", ())
        if permanent and b"\\*" not in permanent and \
                cfg.processed_flag.encode() not in permanent:
            log.warning("IMAP server does not keep the keyword %s in %s; processed messages "
                        "cannot be told apart after a UIDVALIDITY change",
                        cfg.processed_flag, cfg.folder)
        if cfg.processed_action == "move":
            if cfg.move_to == cfg.folder:
                raise ImapSetupError("move_to must differ from folder")
            if not client.folder_exists(cfg.move_to):
                try:
                    client.create_folder(cfg.move_to)
                    log.info("IMAP created folder %s for processed mail", cfg.move_to)
                except IMAPClientAbortError:
                    raise
                except IMAPClientError as exc:
                    # Another client may have created it between LIST and CREATE.
                    if not client.folder_exists(cfg.move_to):
                        raise ImapSetupError(
                            f"cannot create folder {cfg.move_to!r}: {exc}") from None
        self._checkpoint = self._resolve_checkpoint(client, info)

    def _idle(self, client: IMAPClient) -> None:
        """IDLE until the folder changes, a re-check is due, or stop is set."""
        # IDLE reports only changes made after it began, and Dovecot does not even report
        # mail that arrived between the last SEARCH and IDLE. NOOP makes the server look
        # at the folder now; what still slips through the round trip between NOOP and
        # IDLE is caught by the re-check every poll_interval.
        _, responses = client.noop()
        if _has_news(responses):
            return
        client.idle()
        started = time.monotonic()
        # RFC 2177: servers may drop an IDLE after 30 minutes; idle_timeout stays below.
        limit = min(self.config.idle_timeout, self.config.poll_interval)
        while not self.stop.is_set():
            left = limit - (time.monotonic() - started)
            if left <= 0:
                log.debug("IMAP re-issuing IDLE on %s", self.config.folder)
                break
            wait = min(self._wake_interval, left)
            began = time.monotonic()
            responses = client.idle_check(timeout=wait)
            if _has_news(responses):
                break
            if not responses and time.monotonic() - began < wait / 2:
                # idle_check returns early and empty on EOF; DONE below finds out for sure.
                break
        client.idle_done()

    # ------------------------------------------------------------------ sync

    def _sync(self, client: IMAPClient) -> int:
        """Spool and mark everything above the checkpoint; return how many were spooled."""
        cp = self._checkpoint
        assert cp is not None
        if cp.unmarked:
            self._mark_pending(client)
        uids = self._search_new(client)
        taken = 0
        for start in range(0, len(uids), self.config.batch_size):
            if self.stop.is_set():
                return taken  # the checkpoint is per batch: the rest comes next time
            taken += self._take_batch(client, uids[start:start + self.config.batch_size])
        if cp.since is not None:
            # The dated first pass is complete: UIDs below since_until that did not match
            # SINCE were deliberately left alone.
            cp.last_uid = max(cp.last_uid, cp.since_until)
            cp.since, cp.since_until = None, 0
            self._save()
        return taken

    def _search_new(self, client: IMAPClient) -> list[int]:
        cp = self._checkpoint
        assert cp is not None
        last = cp.last_uid
        not_done = ["NOT", "KEYWORD", self.config.processed_flag]
        found: list[int] = []
        if cp.since is not None:
            if last < cp.since_until:
                found += client.search(["UID", f"{last + 1}:{cp.since_until}",
                                        "SINCE", dt.date.fromisoformat(cp.since)] + not_done)
            found += client.search(["UID", f"{max(last, cp.since_until) + 1}:*"] + not_done)
        else:
            found += client.search(["UID", f"{last + 1}:*"] + not_done)
        # RFC 3501 6.4.8: "*" is the highest UID in use, so "n:*" matches the last message
        # even when it is below n. Keep only what is really above the checkpoint.
        return sorted(uid for uid in set(found) if uid > last)

    def _take_batch(self, client: IMAPClient, uids: list[int]) -> int:
        cp = self._checkpoint
        assert cp is not None
        fetched = client.fetch(uids, ["BODY.PEEK[]"])
        log.debug("IMAP fetched %d messages (UIDs %d-%d) from %s",
                  len(fetched), uids[0], uids[-1], self.config.folder)
        spooled: list[int] = []
        examined = cp.last_uid
        try:
            for uid in uids:
                raw = fetched.get(uid, {}).get(b"BODY[]")
                if raw is None:
                    log.info("IMAP UID %d in %s was expunged before it could be fetched",
                             uid, self.config.folder)
                else:
                    try:
                        name = self.spool.put(raw, "imap")
                    except OSError as exc:
                        raise SpoolError(f"UID {uid}: {exc}") from exc
                    spooled.append(uid)
                    log.info("IMAP spooled UID %d Message-ID %s as %s",
                             uid, _message_id(raw), name)
                examined = uid
        finally:
            # Checkpoint whatever was spooled, even if a later put failed: those must not
            # be fetched again.
            if examined > cp.last_uid:
                cp.last_uid = examined
                cp.unmarked = sorted(set(cp.unmarked) | set(spooled))
                self._save()
        if cp.unmarked:
            self._mark(client, cp.unmarked)
        return len(spooled)

    def _mark(self, client: IMAPClient, uids: list[int]) -> None:
        """Flag (and move) spooled messages, then forget them."""
        cfg = self.config
        # The keyword goes on even when moving: a COPY whose EXPUNGE never happened, or a
        # rescan after a UIDVALIDITY change, can then tell processed mail apart.
        client.add_flags(uids, [cfg.processed_flag], silent=True)
        if cfg.processed_action == "move":
            if b"MOVE" in self._caps:
                client.move(uids, cfg.move_to)
            else:
                client.copy(uids, cfg.move_to)
                client.add_flags(uids, [DELETED], silent=True)
                if b"UIDPLUS" in self._caps:
                    client.uid_expunge(uids)
                else:
                    # Without UIDPLUS, EXPUNGE removes every \Deleted message in the folder.
                    client.expunge()
        cp = self._checkpoint
        assert cp is not None
        marked = set(uids)
        cp.unmarked = [u for u in cp.unmarked if u not in marked]
        self._save()

    def _mark_pending(self, client: IMAPClient) -> None:
        cp = self._checkpoint
        assert cp is not None
        log.info("IMAP finishing marks interrupted last time: %d messages in %s",
                 len(cp.unmarked), self.config.folder)
        try:
            self._mark(client, list(cp.unmarked))
        except IMAPClientAbortError:
            raise
        except IMAPClientError as exc:
            # E.g. the messages were already moved or expunged by someone else.
            log.warning("IMAP could not finish marking UIDs %s: %s; leaving them",
                        cp.unmarked, exc)
            cp.unmarked = []
            self._save()

    # ------------------------------------------------------------------ checkpoint

    def _resolve_checkpoint(self, client: IMAPClient, info: dict) -> Checkpoint:
        cfg = self.config
        uidvalidity = int(info[b"UIDVALIDITY"])
        try:
            cp = self._load()
        except ValueError as exc:
            log.error("IMAP state %s unreadable (%s): rescanning every message in %s not "
                      "flagged %s (duplicates are dropped by Message-ID)",
                      self.state_path, exc, cfg.folder, cfg.processed_flag)
            cp = Checkpoint(self._identity, uidvalidity, 0)
            self._checkpoint = cp
            self._save()
            return cp
        if cp is not None and cp.mailbox == self._identity:
            if cp.uidvalidity == uidvalidity:
                return cp
            log.warning("IMAP UIDVALIDITY of %s changed from %d to %d (the server renumbered "
                        "the folder): rescanning every message not flagged %s (duplicates "
                        "are dropped by Message-ID)",
                        cfg.folder, cp.uidvalidity, uidvalidity, cfg.processed_flag)
            cp = Checkpoint(self._identity, uidvalidity, 0)
        else:
            if cp is not None:
                log.info("IMAP state %s belongs to %s, not %s: starting afresh",
                         self.state_path, cp.mailbox, self._identity)
            highest = _highest_uid(client, info)
            if cfg.start_at == "new":
                cp = Checkpoint(self._identity, uidvalidity, highest)
                log.info("IMAP first start on %s (start_at = new): leaving the %d existing "
                         "messages alone, taking UIDs above %d",
                         cfg.folder, info.get(b"EXISTS", 0), highest)
            elif cfg.start_at == "all":
                cp = Checkpoint(self._identity, uidvalidity, 0)
                log.info("IMAP first start on %s (start_at = all): taking every message not "
                         "flagged %s", cfg.folder, cfg.processed_flag)
            else:
                cp = Checkpoint(self._identity, uidvalidity, 0,
                                since=cfg.start_at, since_until=highest)
                log.info("IMAP first start on %s (start_at = %s): taking messages received "
                         "since then", cfg.folder, cfg.start_at)
        self._checkpoint = cp
        self._save()
        return cp

    def _load(self) -> Checkpoint | None:
        try:
            raw = self.state_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"unknown version {data.get('version')!r}")
            cp = Checkpoint(**data)
            if not (isinstance(cp.uidvalidity, int) and isinstance(cp.last_uid, int)):
                raise ValueError("uidvalidity and last_uid must be numbers")
            return cp
        except (TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(str(exc)) from None

    def _save(self) -> None:
        cp = self._checkpoint
        assert cp is not None
        cp.saved_at = self.clock.now().isoformat()
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.state_path,
                     json.dumps(asdict(cp), indent=1, sort_keys=True).encode() + b"\n")

    # ------------------------------------------------------------------ timing

    def _backoff(self, failures: int) -> float:
        """Capped exponential backoff with jitter, so many clients do not retry in step."""
        ceiling = min(self._backoff_max, self._backoff_initial * 2 ** max(failures - 1, 0))
        return ceiling * self._random.uniform(0.5, 1.0)

    def _slow_delay(self) -> float:
        # A wrong password does not fix itself, and providers lock accounts that retry fast.
        return self._backoff_max * self._random.uniform(0.8, 1.0)


# ---------------------------------------------------------------------- helpers


def _highest_uid(client: IMAPClient, info: dict) -> int:
    if b"UIDNEXT" in info:
        return int(info[b"UIDNEXT"]) - 1
    if not info.get(b"EXISTS"):
        return 0
    return max(client.search(["UID", "*"]) or [0])


def _enable_keepalive(sock: socket.socket) -> None:
    """Let the kernel notice a peer that vanished without a word (NAT timeout, cable).

    IDLE otherwise learns of it only when DONE is sent at idle_timeout, up to 25 min later.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _has_news(responses: list) -> bool:
    """True if an IDLE response says the folder gained messages; raise on BYE."""
    for resp in responses:
        if resp and resp[0] == b"BYE":
            text = b" ".join(x for x in resp[1:] if isinstance(x, bytes))
            raise IMAPClientAbortError(f"server said BYE: {text.decode('ascii', 'replace')}")
        if len(resp) >= 2 and resp[1] == b"EXISTS":
            return True
    return False


def _close(client: IMAPClient, *, polite: bool) -> None:
    if polite:
        try:
            client.logout()
            return
        except Exception:  # noqa: BLE001 - the connection is going away regardless
            pass
    try:
        client.shutdown()
    except Exception:  # noqa: BLE001
        pass


def _message_id(raw: bytes) -> str:
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    value = headers.get("Message-ID")
    return " ".join(str(value).split()) if value else "(no Message-ID)"


def _server_text(text: str) -> str:
    # LoginError carries the server's reply as a bytes repr: b'[AUTHENTICATIONFAILED] ...'
    if text.startswith(("b'", 'b"')) and text[-1:] in ("'", '"'):
        return text[2:-1]
    return text


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if isinstance(exc, OSError) else text
