"""docs/deploy.md, proved: mailbot behind a real Postfix, over LMTP and over a pipe.

Each test runs its own Postfix (tests/support/postfix.py) on loopback: the list address
incidents@example.com fans out to two people's Maildirs and to mailbot's delivery address
mailbot@mailbot.internal, which transport_maps routes to mailbot. mailbot sends through
that Postfix, so its acknowledgement reaches the people's Maildirs the way it would in
production. A declaration is sent with swaks, a client nobody here wrote.
"""

from __future__ import annotations

import json
import os
import pwd
import site
import subprocess
import sys
import tomllib
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.support import DECLARATION_BODY, REPO, DaemonProcess, message

from tests.support.postfix import Postfix, Route, documented, find_program, free_port, wait_until

PIPE_USER = "nobody"  # docs/deploy.md uses `mailbot`; any unprivileged user proves it
# mailbot's side of the recipe, as docs/deploy.md shows it.
DOCUMENTED = tomllib.loads(documented("Postfix with LMTP", "`/etc/mailbot/mailbot.toml`"))


# ---------------------------------------------------------------- helpers


def write_config(bot_dir: Path, postfix: Postfix, *, ingress_port: int = 0,
                 protocol: str = DOCUMENTED["ingress"]["smtp"]["protocol"],
                 storage: Path | None = None) -> Path:
    """A mailbot config that listens where Postfix's transport points and sends through
    that Postfix (the documented keys, with the test's ports and paths)."""
    path = bot_dir / "mailbot.toml"
    path.write_text(f"""\
[list]
address = "{postfix.list_address}"
bot_address = "{postfix.bot_address}"

[ingress.smtp]
host = "127.0.0.1"
port = {ingress_port or free_port()}
protocol = "{protocol}"

[outbound]
smtp_host = "{DOCUMENTED["outbound"]["smtp_host"]}"
smtp_port = {postfix.port}
retry_initial_seconds = 1
retry_max_seconds = 2

[storage]
dir = "{storage or bot_dir / 'var'}"

[policy]
allowed_senders = ["example.com"]

[schedule]
digest_when_empty = false   # no digest at start-up among the mail under test

[services]
file = "{REPO / 'config' / 'services.toml'}"
""")
    path.chmod(0o644)
    return path


def declaration(message_id: str, title: str) -> bytes:
    return message(f"[DECLARE] {title}", DECLARATION_BODY, message_id=message_id)


def swaks(postfix: Postfix, raw: bytes, sender: str = "alice@example.com") -> None:
    """Submit a message to Postfix's smtpd, as a person's mail client would."""
    done = subprocess.run(
        [find_program("swaks"), "--server", f"{postfix.host}:{postfix.port}",
         "--from", sender, "--to", postfix.list_address, "--data", "-",
         "--timeout", "20"],
        input=raw, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stdout.decode(errors="replace")[-2000:]


def replies_to(postfix: Postfix, person: str, message_id: str, kind: str = "ack"
               ) -> list[EmailMessage]:
    """mailbot's mails of `kind` in a person's Maildir that answer `message_id`."""
    return [m for m in postfix.maildir(person)
            if m["X-Mailbot-Kind"] == kind and f"<{message_id}>" in str(m["In-Reply-To"])]


def has_message(postfix: Postfix, person: str, message_id: str) -> bool:
    return any(str(m["Message-ID"]) == f"<{message_id}>" for m in postfix.maildir(person))


def wait_for_acks(postfix: Postfix, message_id: str, daemon_log=lambda: "") -> None:
    for person in postfix.people:
        wait_until(lambda person=person: replies_to(postfix, person, message_id),
                   f"mailbot's acknowledgement of <{message_id}> in {person}'s Maildir",
                   detail=lambda: f"{postfix.log_tail()}\n--- mailbot:\n{daemon_log()}")


def mailbot(python: str, config: Path, *args: str, user: str | None = None) -> str:
    """Run a mailbot command (as `user`, so it leaves no root-owned file in a storage
    directory that user writes); its standard output."""
    done = subprocess.run([python, "-m", "mailbot", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60, cwd="/", user=user,
                          group=pwd.getpwnam(user).pw_gid if user else None,
                          extra_groups=[] if user else None)
    assert done.returncode == 0, done.stderr
    return done.stdout


def incidents(python: str, config: Path, user: str | None = None) -> list[dict]:
    return json.loads(mailbot(python, config, "incidents", "--all", "--json", user=user))


def wait_outbox_empty(python: str, config: Path, user: str | None = None) -> None:
    """mailbot has nothing left to send (it records a mail as sent just after the relay's
    250, so a moment after the mail reached a Maildir)."""
    wait_until(lambda: mailbot(python, config, "outbox", user=user)
               .startswith("0 queued, 0 parked"), "mailbot's outbox to empty",
               detail=lambda: mailbot(python, config, "outbox", user=user))


def pipe_python(user: str, workdir: Path) -> str:
    """An interpreter `user` can run that imports this checkout's mailbot.

    The pipe transport runs mailbot as an unprivileged user; the interpreter running the
    tests may live where that user cannot go (pyenv under /root). Then a virtual
    environment is made from a system Python of the same version that reuses this one's
    packages, the way /opt/mailbot/.venv (docs/install.md) is readable by the `mailbot` user."""
    entry = pwd.getpwnam(user)

    def runs(python: str) -> bool:
        try:
            done = subprocess.run(
                [python, "-c", "import mailbot.cli; print(mailbot.cli.__file__)"],
                capture_output=True, text=True, cwd="/", user=entry.pw_uid,
                group=entry.pw_gid, extra_groups=[], timeout=30)
        except PermissionError:  # the interpreter itself is out of reach
            return False
        return done.returncode == 0 and done.stdout.startswith(str(REPO / "mailbot"))

    if runs(sys.executable):
        return sys.executable
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for base in (f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        if not os.access(base, os.X_OK):
            continue
        env_dir = workdir / "python"
        subprocess.run([base, "-m", "venv", "--without-pip", str(env_dir)], check=True,
                       capture_output=True, timeout=60)
        packages = env_dir / "lib" / version / "site-packages"
        lines = "; ".join(f"site.addsitedir({d!r})" for d in site.getsitepackages())
        (packages / "mailbot-test-packages.pth").write_text(
            f"import site, sys; {lines}; sys.path.insert(0, {str(REPO)!r})\n")
        python = str(env_dir / "bin" / "python")
        if runs(python):
            return python
    pytest.fail(f"no Python that user {user!r} may run imports mailbot: {sys.executable} "
                f"is out of its reach and no /usr/bin/{version} could borrow its packages",
                pytrace=False)


def storage_for(user: str, bot_dir: Path) -> Path:
    """A storage directory the pipe user owns (as /var/lib/mailbot is the mailbot user's)."""
    path = bot_dir / "var"
    path.mkdir()
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


# ---------------------------------------------------------------- LMTP


def test_lmtp_route_reaches_mailbot_and_the_ack_reaches_the_people(
        make_postfix, bot_dir, daemons):
    port = free_port()
    postfix = make_postfix(Route.lmtp(port))
    config = write_config(bot_dir, postfix, ingress_port=port)
    daemon = DaemonProcess(config, port)
    daemons.append(daemon)
    daemon.start()

    swaks(postfix, declaration("lmtp-1@example.com", "Checkout down behind Postfix"))

    wait_for_acks(postfix, "lmtp-1@example.com", daemon.log)
    postfix.wait_queue_empty()
    for person in postfix.people:
        # The list fanned the declaration out to the people as well as to mailbot ...
        assert has_message(postfix, person, "lmtp-1@example.com")
        # ... and mailbot's acknowledgement came back through Postfix (Received by it).
        [ack] = replies_to(postfix, person, "lmtp-1@example.com")
        assert "[INC-1]" in str(ack["Subject"])
        assert any("mta.test" in str(r) for r in ack.get_all("Received", []))
    # The declaration reached mailbot once; so did its acknowledgement, coming back on
    # the list, which mailbot recognised as its own.
    ack_id = str(replies_to(postfix, "alice", "lmtp-1@example.com")[0]["Message-ID"])
    assert len(postfix.wait_deliveries_to_bot("sent", "<lmtp-1@example.com>")) == 1
    assert len(postfix.wait_deliveries_to_bot("sent", ack_id)) == 1
    wait_until(lambda: any(ack_id in line and "ignore" in line
                           for line in daemon.log().splitlines()),
               "mailbot to log that it ignored its own acknowledgement", detail=daemon.log)
    assert not (bot_dir / "var" / "outbox-sent").exists()  # sent via Postfix, not a file
    found = incidents(sys.executable, config)
    assert [(i["id"], i["title"]) for i in found] == [(1, "Checkout down behind Postfix")]
    wait_outbox_empty(sys.executable, config)


def test_mailbot_down_postfix_keeps_the_mail_and_it_is_processed_once(
        make_postfix, bot_dir, daemons):
    port = free_port()  # nothing listens here yet: connections are refused
    postfix = make_postfix(Route.lmtp(port))
    config = write_config(bot_dir, postfix, ingress_port=port)

    swaks(postfix, declaration("down-1@example.com", "Declared while mailbot is down"))

    def deferred_for_bot():
        for item in postfix.queue():
            for rcpt in item.get("recipients", []):
                if rcpt["address"] == postfix.bot_delivery and rcpt.get("delay_reason"):
                    return item, rcpt["delay_reason"]
        return None

    item, reason = wait_until(deferred_for_bot, "postfix to defer the delivery to mailbot",
                              detail=postfix.log_tail)
    assert "refused" in reason.lower(), reason
    # The people get their copy at once; only mailbot's waits in the queue.
    for person in postfix.people:
        wait_until(lambda person=person: has_message(postfix, person, "down-1@example.com"),
                   f"{person}'s copy of the declaration", detail=postfix.log_tail)
    wait_until(lambda: [r["address"] for q in postfix.queue() for r in q["recipients"]]
               == [postfix.bot_delivery], "only mailbot's copy to be left in the queue",
               detail=lambda: f"{postfix.queue()}\n{postfix.log_tail()}")

    daemon = DaemonProcess(config, port)
    daemons.append(daemon)
    daemon.start()
    postfix.flush()

    wait_for_acks(postfix, "down-1@example.com", daemon.log)
    postfix.wait_queue_empty()
    [sent] = postfix.wait_deliveries_to_bot("sent", "<down-1@example.com>")
    assert item["queue_id"] in sent
    wait_outbox_empty(sys.executable, config)
    for person in postfix.people:
        assert len(replies_to(postfix, person, "down-1@example.com")) == 1
    assert [i["id"] for i in incidents(sys.executable, config)] == [1]


def test_smtp_listener_behind_an_lmtp_transport_bounces_on_lhlo(
        make_postfix, bot_dir, daemons):
    """The trap docs/deploy.md warns about: Postfix speaks LMTP, mailbot listens for SMTP,
    answers LHLO with 500, and Postfix bounces the mail back to its sender."""
    port = free_port()
    postfix = make_postfix(Route.lmtp(port))
    config = write_config(bot_dir, postfix, ingress_port=port, protocol="smtp")
    daemon = DaemonProcess(config, port)
    daemons.append(daemon)
    daemon.start()

    swaks(postfix, declaration("trap-1@example.com", "Wrong protocol"))

    def bounce():
        return [m for m in postfix.maildir("alice") if not m["X-Mailbot-Kind"]
                and "MAILER-DAEMON" in str(m["From"])]

    [report] = wait_until(bounce, "a bounce to alice", detail=postfix.log_tail)
    text = report.as_string()
    assert "LHLO" in text and "500" in text, text[:3000]
    assert postfix.wait_deliveries_to_bot("bounced", "<trap-1@example.com>")
    assert incidents(sys.executable, config) == []


# ---------------------------------------------------------------- pipe


def pipe_setup(make_postfix, bot_dir: Path, null_sender: bool = True
               ) -> tuple[Postfix, str, Path]:
    """Postfix with the pipe route to `mailbot ingest -` as PIPE_USER, who owns mailbot's
    storage; the interpreter that user runs and mailbot's config path."""
    python = pipe_python(PIPE_USER, bot_dir)
    storage = storage_for(PIPE_USER, bot_dir)
    config_path = bot_dir / "mailbot.toml"
    argv = [python, "-m", "mailbot", "ingest", "--config", str(config_path), "-"]
    postfix = make_postfix(Route.pipe(PIPE_USER, argv, null_sender))
    write_config(bot_dir, postfix, storage=storage)
    return postfix, python, config_path


def test_pipe_route_gives_mailbot_the_envelope_sender_and_the_ack_reaches_the_people(
        make_postfix, bot_dir):
    postfix, python, config_path = pipe_setup(make_postfix, bot_dir)

    # A delivery report: null envelope sender, and nothing else gives it away. mailbot
    # knows the envelope sender only from the Return-Path that flags=R adds; without it
    # this would open an incident and be answered.
    swaks(postfix, declaration("bounce-1@example.com", "Looks like a declaration"),
          sender="<>")
    postfix.wait_queue_empty()
    assert len(postfix.wait_deliveries_to_bot("sent", "<bounce-1@example.com>")) == 1
    assert incidents(python, config_path, user=PIPE_USER) == []

    swaks(postfix, declaration("pipe-1@example.com", "Checkout down through a pipe"))

    wait_for_acks(postfix, "pipe-1@example.com")
    postfix.wait_queue_empty()
    for person in postfix.people:
        assert has_message(postfix, person, "pipe-1@example.com")
        assert len(replies_to(postfix, person, "pipe-1@example.com")) == 1
        assert not replies_to(postfix, person, "bounce-1@example.com")
    assert len(postfix.wait_deliveries_to_bot("sent", "<pipe-1@example.com>")) == 1
    found = incidents(python, config_path, user=PIPE_USER)
    assert [(i["id"], i["title"]) for i in found] == [(1, "Checkout down through a pipe")]
    wait_outbox_empty(python, config_path, user=PIPE_USER)


def test_pipe_with_postfix_default_null_sender_still_ignores_a_bounce(make_postfix, bot_dir):
    postfix, python, config_path = pipe_setup(make_postfix, bot_dir, null_sender=False)

    swaks(postfix, declaration("bounce-2@example.com", "Looks like a declaration"),
          sender="<>")
    postfix.wait_queue_empty()

    assert len(postfix.wait_deliveries_to_bot("sent", "<bounce-2@example.com>")) == 1
    assert incidents(python, config_path, user=PIPE_USER) == []


@pytest.mark.parametrize("mistake", ["storage not writable", "config missing"])
def test_pipe_operator_mistake_defers_and_the_mail_is_processed_once_fixed(
        make_postfix, bot_dir, mistake):
    """Postfix bounces the mail when a pipe exits 73 or 78: an operator's mistake must
    make `mailbot ingest` say 75 instead, so the mail waits in Postfix's queue."""
    python = pipe_python(PIPE_USER, bot_dir)
    config_path = bot_dir / "mailbot.toml"
    postfix = make_postfix(Route.pipe(PIPE_USER, [python, "-m", "mailbot", "ingest",
                                                  "--config", str(config_path), "-"]))
    storage = bot_dir / "var"
    storage.mkdir()  # root's: the pipe user cannot write it
    if mistake == "storage not writable":
        write_config(bot_dir, postfix, storage=storage)

    swaks(postfix, declaration("mistake-1@example.com", "Declared into a broken set-up"))

    wait_until(lambda: postfix.deliveries_to_bot("deferred", "<mistake-1@example.com>")
               or postfix.deliveries_to_bot("bounced", "<mistake-1@example.com>"),
               "postfix to try mailbot's pipe", detail=postfix.log_tail)
    assert not postfix.deliveries_to_bot("bounced"), postfix.log_tail()
    assert postfix.queue(), "the message should wait in postfix's queue"

    entry = pwd.getpwnam(PIPE_USER)
    os.chown(storage, entry.pw_uid, entry.pw_gid)
    write_config(bot_dir, postfix, storage=storage)
    postfix.flush()

    wait_for_acks(postfix, "mistake-1@example.com")
    postfix.wait_queue_empty()
    for person in postfix.people:
        assert len(replies_to(postfix, person, "mistake-1@example.com")) == 1
    assert len(postfix.wait_deliveries_to_bot("sent", "<mistake-1@example.com>")) == 1
    assert [i["id"] for i in incidents(python, config_path, user=PIPE_USER)] == [1]
