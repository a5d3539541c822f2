"""The IMAP ingress against a real Dovecot: nothing missed, nothing spooled twice.

Every test counts Message-IDs in the spool's new/ directory. Waiting is done on events
(the spool's `arrived`, a log record appearing), each with a bounded deadline.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import dataclasses
import os
import time

import pytest
from imapclient.exceptions import IMAPClientError

from mailbot.ingress.imap import ImapAuthError, ImapIngress, ImapSetupError
from mailbot.spool import Spool

from tests.support.imap import (
    make_message,
    make_messages,
    running,
    spooled_message_ids,
    wait_for_spool,
)

FLAG = b"$MailbotProcessed"


def once_each(ids: list[str]) -> collections.Counter:
    return collections.Counter({i: 1 for i in ids})


def folder_flags(server, folder: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
    client = server.connect()
    try:
        client.select_folder(folder, readonly=True)
        return client.get_flags(client.search("ALL"))
    finally:
        client.logout()


def folder_message_ids(server, folder: str) -> list[str]:
    client = server.connect()
    try:
        client.select_folder(folder, readonly=True)
        fetched = client.fetch(client.search("ALL"), ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        return sorted(
            data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode().split(":", 1)[1].strip()
            for data in fetched.values()
        )
    finally:
        client.logout()


# ---------------------------------------------------------------------- basics


def test_run_once_spools_each_message_once_and_flags_it(
        dovecot, make_config, make_ingress, spool, state_path, logwatch, caplog):
    caplog.set_level(logging.DEBUG)  # imapclient's protocol log too: LOGIN must be redacted
    ids, raws = make_messages("basic", 3)
    dovecot.append(raws)
    ingress = make_ingress(make_config(dovecot, start_at="all"))

    assert ingress.run_once() == 3
    assert spooled_message_ids(spool) == once_each(ids)
    assert ingress.run_once() == 0
    assert spooled_message_ids(spool) == once_each(ids)

    flags = folder_flags(dovecot)
    assert len(flags) == 3
    for value in flags.values():
        assert FLAG in value
        assert b"\\Seen" not in value  # BODY.PEEK[]: humans still see the mail as unread
    for message_id in ids:
        assert logwatch.count(f"Message-ID {message_id}") == 1
    state = json.loads(state_path.read_text())
    assert state["last_uid"] == 3 and state["unmarked"] == []
    assert dovecot.password not in caplog.text


def test_messages_appended_while_idle_arrive_once(
        dovecot, make_config, make_ingress, spool, logwatch):
    ingress = make_ingress(make_config(dovecot))
    ids = []
    with running(ingress):
        logwatch.wait_for("IMAP idle on INBOX")
        for n in range(5):
            message_id, raw = make_message("idle", n)
            dovecot.append([raw])
            ids.append(message_id)
        wait_for_spool(spool, 5)
    assert spooled_message_ids(spool) == once_each(ids)
    assert logwatch.count("polling") == 0
    assert logwatch.count("IMAP ingress stopped") == 1


def test_mail_arriving_just_before_idle_begins_is_not_left_waiting(
        dovecot, make_config, make_ingress, spool, logwatch):
    """Dovecot does not report in IDLE what arrived between the last SEARCH and IDLE."""
    message_id, raw = make_message("race", 0)
    # poll_interval is long, so only the IDLE path itself can deliver within the wait.
    ingress = make_ingress(make_config(dovecot, poll_interval=600))
    # Runs in the ingress thread, right after its SEARCH and before it enters IDLE.
    logwatch.on_first("IMAP idle on INBOX", lambda: dovecot.append([raw]))
    with running(ingress):
        wait_for_spool(spool, 1, timeout=10)
    assert spooled_message_ids(spool) == once_each([message_id])


def test_idle_is_reissued_before_idle_timeout(
        dovecot, make_config, make_ingress, spool, logwatch):
    ingress = make_ingress(make_config(dovecot, idle_timeout=1))
    ids, raws = make_messages("reidle", 2)
    with running(ingress):
        logwatch.wait_for("IMAP re-issuing IDLE on INBOX", times=2)
        dovecot.append(raws)
        wait_for_spool(spool, 2)
    assert spooled_message_ids(spool) == once_each(ids)
    assert logwatch.count("IMAP connected to") == 1  # the same connection throughout


def test_polls_where_the_server_has_no_idle(make_dovecot, make_config, make_ingress, spool,
                                            logwatch):
    server = make_dovecot(capabilities="IMAP4rev1 LITERAL+ UIDPLUS MOVE")
    ingress = make_ingress(make_config(server, poll_interval=1))
    ids, raws = make_messages("poll", 3)
    with running(ingress):
        logwatch.wait_for("IMAP polling INBOX every 1s (server has no IDLE)")
        server.append(raws)
        appended = time.time()
        wait_for_spool(spool, 3)
        polls = [r for r in logwatch.records
                 if r.getMessage() == "IMAP polling INBOX for new mail" and r.created > appended]
    assert spooled_message_ids(spool) == once_each(ids)
    assert logwatch.count("idle on") == 0
    assert len(polls) <= 1, "the first poll after delivery must see the new mail"


# ---------------------------------------------------------------------- faults


def test_server_restart_mid_run(dovecot, make_config, make_ingress, spool, logwatch):
    ingress = make_ingress(make_config(dovecot))
    ids, raws = make_messages("restart", 6)
    with running(ingress):
        logwatch.wait_for("IMAP idle on INBOX")
        dovecot.append(raws[:2])
        wait_for_spool(spool, 2)

        dovecot.stop()
        logwatch.wait_for("lost")
        dovecot.start()
        dovecot.append(raws[2:4])  # may land before the ingress is back: the checkpoint finds it
        logwatch.wait_for("IMAP idle on INBOX", times=2)
        dovecot.append(raws[4:])
        wait_for_spool(spool, 6)
    assert spooled_message_ids(spool) == once_each(ids)
    assert logwatch.count("reconnecting in", logging.WARNING) >= 1
    assert logwatch.count("IMAP connected to") >= 2


@pytest.mark.parametrize("how", ["kick", "kill"])
def test_cut_connection_reconnects(how, dovecot, make_config, make_ingress, spool, logwatch):
    ingress = make_ingress(make_config(dovecot))
    ids, raws = make_messages(f"cut-{how}", 3)
    with running(ingress):
        logwatch.wait_for("IMAP idle on INBOX")
        dovecot.append(raws[:1])
        wait_for_spool(spool, 1)

        if how == "kick":
            dovecot.kick()  # the server says BYE
        else:
            assert dovecot.kill_sessions()  # the socket just closes
        logwatch.wait_for("lost")
        dovecot.append(raws[1:])
        wait_for_spool(spool, 3)
        logwatch.wait_for("IMAP idle on INBOX", times=2)
    assert spooled_message_ids(spool) == once_each(ids)
    assert logwatch.count("reconnecting in", logging.WARNING) >= 1


def test_marks_interrupted_by_a_lost_connection_are_finished_without_repeat(
        dovecot, make_config, make_ingress, tmp_path, state_path):
    """The connection dies after the spool took the batch but before the flags went on."""

    class CuttingSpool(Spool):
        def put(self, raw: bytes, source: str) -> str:
            name = super().put(raw, source)
            dovecot.kill_sessions()
            return name

    spool = CuttingSpool(tmp_path / "cutting-spool")
    ids, raws = make_messages("pending", 2)
    dovecot.append(raws)
    config = make_config(dovecot, start_at="all")
    first = ImapIngress(config, spool, state_path=state_path)
    with pytest.raises((IMAPClientError, OSError)):
        first.run_once()
    state = json.loads(state_path.read_text())
    assert state["last_uid"] == 2 and state["unmarked"] == [1, 2]
    assert all(FLAG not in f for f in folder_flags(dovecot).values())

    second = ImapIngress(config, Spool(tmp_path / "cutting-spool"), state_path=state_path)
    assert second.run_once() == 0
    assert spooled_message_ids(spool) == once_each(ids)
    assert all(FLAG in f for f in folder_flags(dovecot).values())
    assert json.loads(state_path.read_text())["unmarked"] == []


def test_wrong_password_is_reported_and_retried_slowly(
        dovecot, make_config, make_ingress, spool, logwatch, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-password-5f2a"
    ingress = make_ingress(make_config(dovecot, password=wrong),
                           backoff_initial=0.05, backoff_max=2.0)
    with running(ingress):
        logwatch.wait_for("rejected", times=2, timeout=10)
        ingress.stop.wait(1.0)  # a measurement window, not synchronisation
    rejected = [r for r in logwatch.records if "rejected" in r.getMessage()]
    assert rejected[0].levelno == logging.ERROR
    assert "IMAP login as bot on 127.0.0.1" in rejected[0].getMessage()
    assert "AUTHENTICATIONFAILED" in rejected[0].getMessage()
    # Retried at the backoff cap, not at backoff_initial: a tight loop would make ~8 tries.
    assert rejected[1].created - rejected[0].created >= 1.5
    assert 2 <= dovecot.count_failed_logins() <= 3
    assert wrong not in caplog.text
    assert len(spool.pending()) == 0


def test_run_once_raises_clearly_on_a_wrong_password(dovecot, make_config, make_ingress):
    with pytest.raises(ImapAuthError, match="AUTHENTICATIONFAILED"):
        make_ingress(make_config(dovecot, password="wrong")).run_once()


def test_missing_folder_is_a_setup_error(dovecot, make_config, make_ingress):
    with pytest.raises(ImapSetupError, match="'Nowhere' does not exist"):
        make_ingress(make_config(dovecot, folder="Nowhere")).run_once()


# ---------------------------------------------------------------------- checkpoint


def test_uidvalidity_change_rescans_skipping_flagged(
        dovecot, make_config, make_ingress, spool, state_path, logwatch):
    admin = dovecot.connect()
    admin.create_folder("Incidents")
    config = make_config(dovecot, folder="Incidents", start_at="all")
    old_ids, old_raws = make_messages("before", 3)
    dovecot.append(old_raws, folder="Incidents")
    ingress = make_ingress(config)
    assert ingress.run_once() == 3
    old_validity = json.loads(state_path.read_text())["uidvalidity"]

    # The folder is rebuilt (as after a server migration): new mail first, so it gets
    # UIDs at or below the old checkpoint, then the old mail with its processed keyword.
    admin.delete_folder("Incidents")
    admin.create_folder("Incidents")
    admin.logout()
    new_ids, new_raws = make_messages("after", 2)
    dovecot.append(new_raws, folder="Incidents")
    dovecot.append(old_raws, folder="Incidents", flags=(FLAG.decode(),))

    assert ingress.run_once() == 2
    assert spooled_message_ids(spool) == once_each(old_ids + new_ids)
    new_validity = json.loads(state_path.read_text())["uidvalidity"]
    assert new_validity != old_validity
    assert logwatch.count(f"UIDVALIDITY of Incidents changed from {old_validity} to "
                          f"{new_validity}", logging.WARNING) == 1


def test_state_survives_a_restart_of_the_ingress(
        dovecot, make_config, make_ingress, spool, state_path):
    config = make_config(dovecot, start_at="all")
    old_ids, old_raws = make_messages("first-life", 3)
    dovecot.append(old_raws)
    assert make_ingress(config).run_once() == 3
    state = json.loads(state_path.read_text())
    assert state["last_uid"] == 3

    # Take the keyword off, so only the checkpoint stands between old mail and a repeat.
    admin = dovecot.connect()
    admin.select_folder("INBOX")
    admin.remove_flags(admin.search("ALL"), [FLAG])
    assert state["uidvalidity"] == admin.folder_status("INBOX")[b"UIDVALIDITY"]
    admin.logout()
    # RFC 3501: "UID 4:*" matches UID 3 when 3 is the highest; that must not be re-spooled.
    assert make_ingress(config).run_once() == 0  # a new object, same state_path
    new_ids, new_raws = make_messages("second-life", 2)
    dovecot.append(new_raws)

    assert make_ingress(config).run_once() == 2
    assert spooled_message_ids(spool) == once_each(old_ids + new_ids)


def test_start_at_new_leaves_a_thousand_old_messages_alone(
        dovecot, make_config, make_ingress, spool):
    _, old_raws = make_messages("old", 1000)
    dovecot.append(old_raws)
    ingress = make_ingress(make_config(dovecot))  # start_at = "new" is the default
    assert ingress.run_once() == 0
    new_ids, new_raws = make_messages("new", 2)
    dovecot.append(new_raws)
    assert ingress.run_once() == 2
    assert spooled_message_ids(spool) == once_each(new_ids)
    assert sum(FLAG in f for f in folder_flags(dovecot).values()) == 2


def test_start_at_all_takes_a_thousand_messages_once_in_batches(
        dovecot, make_config, make_ingress, spool, logwatch):
    ids, raws = make_messages("bulk", 1000)
    dovecot.append(raws)
    ingress = make_ingress(make_config(dovecot, start_at="all", batch_size=200))
    assert ingress.run_once() == 1000
    assert spooled_message_ids(spool) == once_each(ids)
    batches = [m for m in logwatch.messages() if m.startswith("IMAP fetched")]
    assert len(batches) == 5 and all(m.startswith("IMAP fetched 200 messages") for m in batches)
    assert ingress.run_once() == 0
    assert len(spool.pending()) == 1000


def test_start_at_a_date_takes_mail_received_since(
        dovecot, make_config, make_ingress, spool):
    long_ago = dt.datetime(2020, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
    _, old_raws = make_messages("dated-old", 3)
    dovecot.append(old_raws, date=long_ago)
    recent_ids, recent_raws = make_messages("dated-recent", 2)
    dovecot.append(recent_raws)
    ingress = make_ingress(make_config(dovecot, start_at="2024-01-01"))
    assert ingress.run_once() == 2

    # Arriving after the first start, mail is new whatever its internal date says.
    late_id, late_raw = make_message("dated-late", 0)
    dovecot.append([late_raw], date=long_ago)
    assert ingress.run_once() == 1
    assert spooled_message_ids(spool) == once_each(recent_ids + [late_id])


# ---------------------------------------------------------------------- actions


@pytest.mark.parametrize("capabilities", [
    None,  # Dovecot's own list: MOVE
    "IMAP4rev1 LITERAL+ IDLE UIDPLUS",  # COPY + \Deleted + UID EXPUNGE
    "IMAP4rev1 LITERAL+ IDLE",  # COPY + \Deleted + EXPUNGE
])
def test_move_action(capabilities, make_dovecot, make_config, make_ingress, spool):
    server = make_dovecot(capabilities=capabilities)
    ids, raws = make_messages("move", 3)
    server.append(raws)
    ingress = make_ingress(make_config(server, processed_action="move", move_to="Processed",
                                       start_at="all"))
    assert ingress.run_once() == 3
    assert folder_flags(server, "INBOX") == {}
    moved = folder_flags(server, "Processed")
    assert len(moved) == 3 and all(FLAG in f for f in moved.values())
    assert folder_message_ids(server, "Processed") == sorted(ids)

    more_ids, more_raws = make_messages("move-more", 2)
    server.append(more_raws)
    assert ingress.run_once() == 2
    assert spooled_message_ids(spool) == once_each(ids + more_ids)
    assert len(folder_flags(server, "Processed")) == 5


# ---------------------------------------------------------------------- TLS


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
def test_tls_modes(mode, make_dovecot, make_config, make_ingress, spool):
    try:
        server = make_dovecot(tls=True)
    except FileNotFoundError as exc:
        message = f"{exc} not found: needed to make a test certificate (apt-get install openssl)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    port = server.tls_port if mode == "implicit" else server.port
    config = make_config(server, tls=mode, port=port, start_at="all")
    ids, raws = make_messages(f"tls-{mode}", 2)
    server.append(raws)

    with pytest.raises(ImapSetupError, match="certificate not trusted"):
        make_ingress(config).run_once()  # the system trust store does not know this server

    # [ingress.imap] ca_file: trust the server's own CA instead of the system's.
    trusting = dataclasses.replace(config, ca_file=str(server.cert_path))
    assert make_ingress(trusting).run_once() == 2
    assert spooled_message_ids(spool) == once_each(ids)
