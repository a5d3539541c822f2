"""Two mailbots on each other's lists, through a list server that echoes everything:
the number of messages stays bounded."""

from __future__ import annotations

import asyncio
import smtplib
import threading

import pytest
from aiosmtpd.controller import Controller

from mailbot.daemon import Daemon
from mailbot.runtime import build_runtime
from tests.support import DECLARATION_BODY, drained, free_port, load, message, wait_for


class ListServer:
    """A tiny list server: mail to a list address goes to every subscriber's SMTP port,
    with List-Id added; optionally it munges From and drops Auto-Submitted like some
    DMARC-mitigating lists do. Mail to anyone else is just counted."""

    def __init__(self, lists: dict[str, list[int]], munge: bool) -> None:
        self.lists = lists
        self.munge = munge
        self.port = free_port()
        self.posts = 0
        self.personal = 0
        self.lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        data = envelope.original_content or envelope.content
        for rcpt in envelope.rcpt_tos:
            if rcpt in self.lists:
                with self.lock:
                    self.posts += 1
                copy = self._listify(data, rcpt)
                for port in self.lists[rcpt]:
                    await asyncio.get_running_loop().run_in_executor(
                        None, self._deliver, port, rcpt, copy)
            else:
                with self.lock:
                    self.personal += 1
        return "250 OK"

    def _listify(self, data: bytes, list_address: str) -> bytes:
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        if self.munge:
            original = [line for line in lines if line.lower().startswith(b"from:")]
            lines = [line for line in lines
                     if not line.lower().startswith((b"auto-submitted:", b"from:"))]
            lines.append(b"From: Someone via the list <" + list_address.encode() + b">")
            # Like Mailman's munge_from: the author survives in a header of its own.
            lines += [b"X-Original-From:" + line[5:] for line in original]
        lines.append(b"List-Id: <" + list_address.replace("@", ".").encode() + b">")
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    @staticmethod
    def _deliver(port: int, rcpt: str, data: bytes) -> None:
        with smtplib.SMTP("127.0.0.1", port) as s:
            s.sendmail(f"{rcpt.split('@')[0]}-bounces@example.com", [rcpt], data)


def _bot(tmp_path, name: str, port: int, relay: int):
    workdir = tmp_path / name
    workdir.mkdir()
    # Both lists rewrite From and keep the author in X-Original-From (used when the list
    # server munges; an echoing list leaves From alone).
    rewriting = ", ".join(f'{{address = "incidents-{n}@example.com", '
                          f'author_header = "X-Original-From"}}' for n in ("a", "b"))
    config = load(workdir, smtp_port=port, relay_port=relay, extra="",
                  policy=f"from_rewriting_lists = [{rewriting}]")
    text = config.path.read_text()
    text = text.replace('address = "incidents@example.com"',
                        f'address = "incidents-{name}@example.com"')
    text = text.replace('bot_address = "mailbot@example.com"',
                        f'bot_address = "mailbot-{name}@example.com"')
    config.path.write_text(text)
    from mailbot.config import load_config
    rt = build_runtime(load_config(config.path))
    return Daemon(rt)


@pytest.mark.parametrize("munge", [False, True], ids=["echoing-list", "munging-list"])
def test_two_mailbots_on_each_others_lists_stay_quiet(tmp_path, munge):
    port_a, port_b = free_port(), free_port()
    lists = ListServer({"incidents-a@example.com": [port_a, port_b],
                        "incidents-b@example.com": [port_a, port_b]}, munge)
    lists.controller.start()
    a = _bot(tmp_path, "a", port_a, lists.port)
    b = _bot(tmp_path, "b", port_b, lists.port)
    a.start()
    b.start()
    try:
        with smtplib.SMTP("127.0.0.1", lists.port) as s:  # Alice posts to list A
            s.sendmail("alice@example.com", ["incidents-a@example.com"],
                       message("[DECLARE] loop bait", DECLARATION_BODY, message_id="bait@x")
                       .replace(b"To: incidents@", b"To: incidents-a@"))
        wait_for(lambda: lists.posts >= 3, what="the acks posted to the lists")
        # Quiet means: both daemons idle and nothing new for a while, checked repeatedly.
        for _ in range(3):
            wait_for(lambda: drained(a) and drained(b), what="both idle")
            before = lists.posts + lists.personal
            wait_for(lambda: drained(a) and drained(b))
            assert lists.posts + lists.personal == before
        # Three posts: Alice's, A's ack on list A, and B's ack on list B (B is subscribed
        # to list A, so it records the declaration too). Neither bot answers the other's
        # ack, nor its own echo, and nobody gets personal mail.
        assert lists.posts == 3 and lists.personal == 0
        assert len(a.rt.store.live_incidents()) == 1
        assert len(b.rt.store.live_incidents()) == 1
    finally:
        a.shutdown()
        b.shutdown()
        a.rt.close()
        b.rt.close()
        lists.controller.stop()
