"""A private, throwaway Dovecot for the IMAP tests.

Each instance lives in its own directory under /tmp (short on purpose: Dovecot's unix
sockets live in base_dir, and socket paths are limited to 108 bytes), listens on
127.0.0.1 at a free port, authenticates one passwd-file user with a random password and
keeps mail in a Maildir. It runs in the foreground (`dovecot -F`) as a child of the test
process, so it can be stopped and started again within one test.

Running as root: Dovecot refuses to run login processes or mail access as root, so the
login processes run as `dovenull` (or `nobody`) and mail as `dovecot` (or `nobody`); the
instance directory is made traversable (0711) and the Maildir is owned by the mail user.
Running as an ordinary user: every process runs as that user and nothing is chrooted.
"""

from __future__ import annotations

import datetime as dt
import getpass
import grp
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from imapclient import IMAPClient

from tests.support import free_port
from tests.support.programs import find_program



def _existing_user(*names: str) -> str:
    for name in names:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError(f"none of the users {names} exists")


class Dovecot:
    """One private Dovecot instance: start, stop, restart, and a few admin actions."""

    host = "127.0.0.1"

    def __init__(self, *, capabilities: str | None = None, tls: bool = False) -> None:
        self.binary = find_program("dovecot")
        if self.binary is None:
            raise FileNotFoundError("dovecot")
        self.doveadm = find_program("doveadm")
        self.root = Path(tempfile.mkdtemp(prefix="mbdc-"))
        self.port = free_port()
        self.tls_port = free_port() if tls else 0
        self.tls = tls
        self.user = "bot"
        self.password = secrets.token_urlsafe(18)
        # Replaces the advertised capability list (used to hide IDLE or MOVE); Dovecot
        # still understands the commands, mailbot just must not use them.
        self.capabilities = capabilities
        self.proc: subprocess.Popen | None = None
        self.config_path = self.root / "dovecot.conf"
        self.log_path = self.root / "dovecot.log"
        self.cert_path = self.root / "cert.pem"
        try:
            self._write_files()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    # ------------------------------------------------------------------ setup

    def _write_files(self) -> None:
        root = self.root
        for sub in ("run", "state", "mail"):
            (root / sub).mkdir()
        (root / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}::::::\n")
        (root / "passwd").chmod(0o600)
        if os.geteuid() == 0:
            login_user = _existing_user("dovenull", "nobody")
            mail_user = _existing_user("dovecot", "nobody")
            internal_user = "root"  # the auth process must read the 0600 passwd file
            root.chmod(0o711)
            entry = pwd.getpwnam(mail_user)
            os.chown(root / "mail", entry.pw_uid, entry.pw_gid)
            chroot = ""  # defaults: login processes chroot into base_dir/login
        else:
            login_user = mail_user = internal_user = getpass.getuser()
            entry = pwd.getpwnam(mail_user)
            chroot = "  chroot =\n"
        tls_lines = "ssl = no\n"
        imaps_port = 0
        if self.tls:
            self._make_certificate()
            tls_lines = (f"ssl = yes\nssl_cert = <{self.cert_path}\n"
                         f"ssl_key = <{root / 'key.pem'}\n")
            imaps_port = self.tls_port
        capability = f"imap_capability = {self.capabilities}\n" if self.capabilities else ""
        self.config_path.write_text(f"""\
# Written by tests/support/dovecot.py for one test; thrown away afterwards.
base_dir = {root}/run
state_dir = {root}/state
log_path = {self.log_path}
instance_name = mailbot-test-{root.name}
protocols = imap
listen = 127.0.0.1
{tls_lines}disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
# The client's own backoff is under test, so the server must not slow failures down.
auth_failure_delay = 0
default_internal_user = {internal_user}
default_internal_group = {grp.getgrgid(pwd.getpwnam(internal_user).pw_gid).gr_name}
default_login_user = {login_user}
first_valid_uid = {entry.pw_uid}
first_valid_gid = 0
mail_location = maildir:{root}/mail/%u
mail_fsync = never
# inotify normally wakes IDLE at once; this is the fallback poll.
mailbox_idle_check_interval = 1 secs
{capability}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={entry.pw_uid} gid={entry.pw_gid} home={root}/mail/%u
}}
service imap-login {{
{chroot}  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
service anvil {{
{chroot}  # Disables the per-IP auth penalty (up to 15 s): only the client's backoff is tested.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service auth-worker {{
  user = {internal_user}
}}
""")

    def _make_certificate(self) -> None:
        openssl = find_program("openssl")
        if openssl is None:
            raise FileNotFoundError("openssl")
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-keyout", str(self.root / "key.pem"), "-out", str(self.cert_path)],
            check=True, capture_output=True,
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 15.0) -> None:
        """Start the server and return once it greets a client."""
        assert self.proc is None, "already running"
        # Its own session: stop() can then reach the master's children by group id.
        self.proc = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                self.proc = None
                raise RuntimeError(f"dovecot exited at start-up: {err}\n{self.log_tail()}")
            if self._greets():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dovecot did not answer within {timeout}s\n{self.log_tail()}")
            time.sleep(0.05)  # bounded readiness poll, not synchronisation by sleeping

    def _greets(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as sock:
                return sock.recv(64).startswith(b"* OK")
        except OSError:
            return False

    def stop(self, grace: float = 3.0) -> None:
        """Shut the server down and reap it; `grace` 0 means kill at once.

        SIGTERM is a clean shutdown (clients get BYE). Dovecot's master waits for half-open
        client connections before it exits, so after `grace` seconds the whole process
        group is killed, as a crashed server would be.
        """
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if grace > 0:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # The group id is the master's pid (start_new_session): only this instance's
        # processes are in it. Killing it also ends children the master left behind.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        self.stop(grace=0)
        shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ admin

    def connect(self) -> IMAPClient:
        """A fresh, logged-in administrative client (close it with logout())."""
        client = IMAPClient(self.host, self.port, ssl=False, timeout=10)
        client.login(self.user, self.password)
        return client

    def append(self, messages: list[bytes], folder: str = "INBOX",
               flags: tuple[str, ...] = (), date: dt.datetime | None = None) -> None:
        """Deliver messages with IMAP APPEND (MULTIAPPEND in chunks when there are many)."""
        client = self.connect()
        try:
            if len(messages) > 1 and date is None and not flags \
                    and client.has_capability("MULTIAPPEND"):
                for start in range(0, len(messages), 250):
                    client.multiappend(folder, messages[start:start + 250])
            else:
                for raw in messages:
                    client.append(folder, raw, flags=flags, msg_time=date)
        finally:
            client.logout()

    def run_doveadm(self, *args: str) -> str:
        assert self.doveadm, "doveadm not found"
        done = subprocess.run([self.doveadm, "-c", str(self.config_path), *args],
                              capture_output=True, text=True, timeout=15)
        if done.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def kick(self) -> None:
        """Disconnect every session of the user, the polite way (the server says BYE)."""
        self.run_doveadm("kick", self.user)

    def session_pids(self) -> list[int]:
        """Process ids of the user's imap processes."""
        out = self.run_doveadm("who", "-1", self.user)
        pids = []
        for line in out.splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                pids.append(int(fields[2]))
        return pids

    def kill_sessions(self) -> list[int]:
        """SIGKILL the user's imap processes: the client sees the socket close, no BYE."""
        pids = self.session_pids()
        killed = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass  # already gone: anvil's list lags a logout
        return killed

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def count_failed_logins(self) -> int:
        """Password checks that failed, as the auth process logged them."""
        return self.log_text().count("Password mismatch")
