"""A private, throwaway Postfix for the MTA recipe tests (docs/deploy.md).

Each instance lives in its own directory under /tmp (short on purpose: Postfix's unix
sockets live in the queue directory, and socket paths are limited to 108 bytes), with its
own config, queue and data directories and its own log file. It listens on 127.0.0.1 at a
free port and relays nowhere: the list domain's people have virtual Maildirs under
`mail/`, the list address fans out to them and to mailbot's delivery address, and every
other destination goes to the `error` transport.

Postfix's master must start as root (it binds, then runs its daemons as `postfix`), so
these tests need root, like the Debian package they use.
"""

from __future__ import annotations

import email
import email.policy
import grp
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from tests.support import free_port
from tests.support.programs import find_program

WAIT = 20.0  # upper bound for anything awaited; normally well under a second


def wait_until(predicate, what: str, timeout: float = WAIT, detail=lambda: ""):
    """Poll `predicate` until it returns something true; fail naming `what` after `timeout`.

    A bounded wait on a condition another process makes true (a file appears, a queue
    empties), for which there is no event to block on."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{detail()}")
        time.sleep(0.05)


DEPLOY_DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
# The documented installation paths, replaced by the test's own.
DOC_PORT = "8025"
DOC_COMMAND = "/opt/mailbot/.venv/bin/mailbot ingest --config /etc/mailbot/mailbot.toml -"
DOC_USER = "user=mailbot"


def documented(section: str, marker: str) -> str:
    """The code block that follows `marker` in the `## section` of docs/deploy.md: the
    tests configure Postfix with the recipe as operators read it."""
    text = DEPLOY_DOC.read_text(encoding="utf-8")
    start = text.find(f"\n## {section}\n")
    assert start >= 0, f"docs/deploy.md has no section {section!r}"
    end = text.find("\n## ", start + 1)
    body = text[start:end if end >= 0 else len(text)]
    at = body.find(marker)
    assert at >= 0, f"docs/deploy.md, {section}: no {marker!r}"
    fence = body.index("```", at)
    first = body.index("\n", fence) + 1
    return body[first:body.index("```", first)]


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, f"docs/deploy.md changed: {old!r} is not in\n{text}"
    return text.replace(old, new)


@dataclass(frozen=True)
class Route:
    """How Postfix hands the list's mail to mailbot, as docs/deploy.md says: the
    transport_maps entry and the master.cf service it may need (the pipe)."""

    transport: str
    service: str = ""

    @classmethod
    def lmtp(cls, port: int) -> "Route":
        section = "Postfix with LMTP"
        transport = documented(section, "`/etc/postfix/transport`")
        return cls(_replace(transport, f":{DOC_PORT}", f":{port}"))

    @classmethod
    def pipe(cls, user: str, argv: list[str], null_sender: bool = True) -> "Route":
        """The documented pipe, run as `user` with `argv`; null_sender=False drops the
        recipe's `null_sender=` (Postfix's default then writes <MAILER-DAEMON>)."""
        section = "Postfix with a pipe"
        service = documented(section, "`/etc/postfix/master.cf`")
        service = _replace(service, DOC_COMMAND, " ".join(argv))
        service = _replace(service, DOC_USER, f"user={user}")
        if not null_sender:
            service = _replace(service, " null_sender= ", " ")
        return cls(documented(section, "`/etc/postfix/transport`"), service)


class Postfix:
    """One private Postfix instance: write its files, start, stop, look at its queue."""

    host = "127.0.0.1"
    list_address = "incidents@example.com"
    bot_address = "mailbot@example.com"
    bot_delivery = "mailbot@mailbot.internal"  # where the list's copy for mailbot goes
    people = ("alice", "bob")  # mailboxes at example.com, members of the list

    def __init__(self, route: Route) -> None:
        self.binary = find_program("postfix")
        self.postqueue = find_program("postqueue")
        if self.binary is None or self.postqueue is None:
            raise FileNotFoundError("postfix")
        self.route = route
        self.root = Path(tempfile.mkdtemp(prefix="mbpf-"))
        self.port = free_port()
        self.etc = self.root / "etc"
        self.log_path = self.root / "maillog"
        self.mail = self.root / "mail"
        self.running = False
        try:
            self._write_files()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    # ------------------------------------------------------------------ setup

    def _write_files(self) -> None:
        root = self.root
        # Postfix's daemons (user postfix) and the virtual delivery agent must get through.
        root.chmod(0o755)
        for sub in ("etc", "queue", "data", "mail"):
            (root / sub).mkdir()
        postfix_user = pwd.getpwnam("postfix")
        os.chown(root / "data", postfix_user.pw_uid, postfix_user.pw_gid)
        # The people's Maildirs belong to an unprivileged user: virtual(8) will not deliver
        # as root (virtual_minimum_uid).
        mailbox_owner = pwd.getpwnam("nobody")
        os.chown(self.mail, mailbox_owner.pw_uid, mailbox_owner.pw_gid)
        main_cf = _replace(documented("Postfix with LMTP", "`/etc/postfix/main.cf`"),
                           "hash:/etc/postfix/", f"texthash:{self.etc}/")
        (self.etc / "main.cf").write_text(f"""\
# Written by tests/support/postfix.py for one test; thrown away afterwards.
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file = {self.log_path}
maillog_file_prefixes = {root}
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = mta.test
myorigin = example.com
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
# Relays nowhere: no local delivery, no relay host, and every destination not named
# below is refused by the error transport.
mydestination =
alias_maps =
alias_database =
local_transport = error:no local delivery in this test
relayhost =
default_transport = error:this test relays nowhere
biff = no
# The people's mailboxes, standing in for wherever the list's members read mail.
virtual_mailbox_domains = example.com
virtual_mailbox_base = {self.mail}
virtual_mailbox_maps = texthash:{self.etc}/mailboxes
virtual_uid_maps = static:{mailbox_owner.pw_uid}
virtual_gid_maps = static:{mailbox_owner.pw_gid}
# The recipe itself, from docs/deploy.md (texthash: needs no postmap).
{main_cf}""")
        (self.etc / "mailboxes").write_text(
            "".join(f"{p}@example.com {p}/\n" for p in self.people))
        # Both routes use the same alias file and main.cf lines (documented once, for LMTP).
        (self.etc / "virtual").write_text(
            documented("Postfix with LMTP", "`/etc/postfix/virtual`"))
        (self.etc / "transport").write_text(self.route.transport)
        (self.etc / "master.cf").write_text(_MASTER_CF.format(port=self.port)
                                            + self.route.service)
        meta = subprocess.run([find_program("postconf") or "postconf", "-c", str(self.etc), "-h",
                               "meta_directory"], capture_output=True, text=True, check=True)
        _make_queue_directories(root / "queue", Path(meta.stdout.strip()))

    # ------------------------------------------------------------------ lifecycle

    def _postfix(self, *args: str) -> None:
        done = subprocess.run([self.binary, "-c", str(self.etc), *args],
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            # The postfix command logs to the instance's log file, not to its stderr.
            raise RuntimeError(f"postfix {' '.join(args)} failed ({done.returncode}): "
                               f"{done.stderr.strip()}\n{self.log_tail()}")

    def start(self) -> None:
        """Start the instance and return once its smtpd greets a client."""
        assert not self.running, "already running"
        self._postfix("start")
        self.running = True
        wait_until(self._greets, "postfix to greet on port %d" % self.port,
                   detail=self.log_tail)

    def _greets(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=2) as sock:
                return sock.recv(64).startswith(b"220 ")
        except OSError:
            return False

    def _master_pid(self) -> int | None:
        try:
            return int((self.root / "queue" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Stop the instance the way `postfix stop` does (SIGTERM to the master, which
        ends its daemons) and wait until the master has exited."""
        if not self.running:
            return
        self.running = False
        pid = self._master_pid()
        if pid is None:
            self._postfix("stop")
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        wait_until(lambda: not _alive(pid), f"postfix master {pid} to exit",
                   detail=self.log_tail)

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ queue and mail

    def queue(self) -> list[dict]:
        """`postqueue -j`: one object per queued message (recipients, delay reasons)."""
        done = subprocess.run([self.postqueue, "-c", str(self.etc), "-j"],
                              capture_output=True, text=True, timeout=30, check=True)
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]

    def flush(self) -> None:
        """Ask the queue manager to retry deferred mail now (`postqueue -f`)."""
        subprocess.run([self.postqueue, "-c", str(self.etc), "-f"],
                       capture_output=True, timeout=30, check=True)

    def wait_queue_empty(self, timeout: float = WAIT) -> None:
        wait_until(lambda: not self.queue(), "postfix's queue to empty", timeout,
                   detail=lambda: f"{self.queue()}\n{self.log_tail()}")

    def maildir(self, person: str) -> list[EmailMessage]:
        """The messages delivered to a person's Maildir, oldest first."""
        new = self.mail / person / "new"
        files = sorted(new.iterdir(), key=lambda p: p.stat().st_mtime_ns) \
            if new.is_dir() else []
        return [email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
                for f in files]

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def deliveries_to_bot(self, status: str, message_id: str | None = None) -> list[str]:
        """Log lines of deliveries to mailbot's address with `status` (sent, deferred,
        bounced), of the message with `message_id` (angle brackets included) or of all."""
        lines = self.log_text().splitlines()
        queue_ids = None
        if message_id is not None:
            queue_ids = {line.split(": message-id=")[0].rsplit(" ", 1)[-1]
                         for line in lines if f": message-id={message_id}" in line}
        return [line for line in lines
                if f"to=<{self.bot_delivery}>" in line and f"status={status}" in line
                and (queue_ids is None or line.split(": to=<")[0].rsplit(" ", 1)[-1]
                     in queue_ids)]

    def wait_deliveries_to_bot(self, status: str, message_id: str) -> list[str]:
        """`deliveries_to_bot` once there is at least one: Postfix's daemons log through
        postlogd, so a line may reach the file a moment after the queue moved on."""
        return wait_until(lambda: self.deliveries_to_bot(status, message_id),
                          f"postfix to log status={status} for {message_id}",
                          detail=self.log_tail)


def _alive(pid: int) -> bool:
    """Whether the process runs; an exited daemon that init has not reaped yet (a
    zombie, which a container's init may leave for a second or two) does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _make_queue_directories(queue: Path, meta_directory: Path) -> None:
    """The queue directories as Postfix's own list (postfix-files) describes them.

    `postfix start` would create them too, in an integrity check that takes two seconds
    per instance; made here, the `quick-start` marker lets it skip that check."""
    owners = {"$mail_owner": "postfix", "$setgid_group": "postdrop", "root": "root",
              "-": "root"}
    for line in (meta_directory / "postfix-files").read_text().splitlines():
        fields = line.split(":")
        if len(fields) < 5 or fields[1] != "d" or not fields[0].startswith("$queue_directory"):
            continue
        path = queue / fields[0][len("$queue_directory"):].lstrip("/")
        path.mkdir(exist_ok=True)
        user = pwd.getpwnam(owners[fields[2]]).pw_uid
        group = grp.getgrnam(owners[fields[3]]).gr_gid if fields[3] != "-" else 0
        os.chown(path, user, group)
        path.chmod(int(fields[4], 8))
    (queue / "quick-start").touch()


# Postfix 3.x's stock master.cf (Debian's master.cf.dist) with the smtpd on a private
# loopback port, nothing chrooted (the instance has no chroot files), the daemons this
# recipe uses and a log service for maillog_file.
_MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup     unix  n       -       n       60      1       pickup
cleanup    unix  n       -       n       -       0       cleanup
qmgr       unix  n       -       n       300     1       qmgr
rewrite    unix  -       -       n       -       -       trivial-rewrite
bounce     unix  -       -       n       -       0       bounce
defer      unix  -       -       n       -       0       bounce
trace      unix  -       -       n       -       0       bounce
verify     unix  -       -       n       -       1       verify
flush      unix  n       -       n       1000?   0       flush
proxymap   unix  -       -       n       -       -       proxymap
proxywrite unix  -       -       n       -       1       proxymap
smtp       unix  -       -       n       -       -       smtp
relay      unix  -       -       n       -       -       smtp
showq      unix  n       -       n       -       -       showq
error      unix  -       -       n       -       -       error
retry      unix  -       -       n       -       -       error
discard    unix  -       -       n       -       -       discard
virtual    unix  -       n       n       -       -       virtual
lmtp       unix  -       -       n       -       -       lmtp
anvil      unix  -       -       n       -       1       anvil
scache     unix  -       -       n       -       1       scache
postlog    unix-dgram n  -       n       -       1       postlogd
"""
