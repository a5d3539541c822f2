"""SMTP/LMTP ingress on aiosmtpd: bytes from the MTA or list server into the spool.

Says 250 only after `Spool.put` returned, i.e. after the message and its directory entry
are fsync'd. Refuses oversized mail with 552 (aiosmtpd's data_size_limit), and says 452/451
(try later) when the disk cannot take the message, so the sender keeps it.

Memory per connection is bounded by the message size limit: DATA is read in blocks into
one buffer (aiosmtpd keeps one object of ~170 bytes per line: 10 MB of empty lines cost
830 MB), and beyond `max_connections` at once a client is answered 421 (try later).
"""

from __future__ import annotations

import asyncio
import errno
import logging
from typing import TYPE_CHECKING, cast

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session, syntax

from mailbot.config import SmtpIngressConfig
from mailbot.spool import Spool

log = logging.getLogger(__name__)

_END = b"\r\n.\r\n"  # the lone dot that ends DATA, with the line end before it
TOO_MANY = b"421 4.7.0 mailbot: too many connections, try again later\r\n"
STOPPING = "421 4.3.2 mailbot is stopping, try again later"
STOP_GRACE = 10.0  # seconds a stopping daemon waits for the answer to a DATA in progress


class SpoolHandler:
    """aiosmtpd handler: only DATA matters to us."""

    def __init__(self, spool: Spool, protocol: str) -> None:
        self.spool = spool
        self.protocol = protocol

    async def handle_DATA(  # noqa: N802 - aiosmtpd finds its hooks by this name
            self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):  # only with decode_data=True, which we never set
            content = content.encode("utf-8", "surrogateescape")
        mail_from = (envelope.mail_from or "").replace("\r", "").replace("\n", "")
        if mail_from == "<>":
            mail_from = ""
        # Like a final delivery agent (RFC 5321 4.4), record the envelope sender: the rules
        # need the null sender to recognise bounces.
        raw = b"Return-Path: <" + mail_from.encode("utf-8", "replace") + b">\r\n" + content
        envelope.original_content = envelope.content = None  # one copy in memory, not two
        del content
        loop = asyncio.get_running_loop()
        try:
            name = await loop.run_in_executor(None, self.spool.put, raw, self.protocol)
        except OSError as exc:
            log.error("smtp: could not spool a message from %s (%d bytes): %s",
                      mail_from or "<>", len(raw), exc)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                status = "452 4.3.1 Insufficient system storage, try again later"
            else:
                status = "451 4.3.0 Local error in processing, try again later"
            return self._per_recipient(status, envelope)
        log.debug("smtp: spooled %s from %s (%d bytes)", name, mail_from or "<>", len(raw))
        return self._per_recipient("250 2.0.0 OK: queued as " + name, envelope)

    def _per_recipient(self, status: str, envelope: Envelope) -> str:
        # RFC 2033: LMTP answers DATA once per accepted recipient.
        if self.protocol == "lmtp":
            return "\r\n".join([status] * max(1, len(envelope.rcpt_tos)))
        return status


class _Gate:
    """Connections open now, shared by every protocol instance of one listener (all run
    on the controller's one event loop, so no lock)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.in_data = 0  # sessions between DATA and its answer
        self.closing = False  # the daemon is stopping: no new transaction starts


# The mixin is typed against the class it is mixed into (its attributes are aiosmtpd's).
if TYPE_CHECKING:
    _MixinBase = SMTP
else:
    _MixinBase = object


class _BoundedData(_MixinBase):
    """DATA read in blocks into one buffer, and a cap on connections; mixed into aiosmtpd's
    SMTP and LMTP. The rules are aiosmtpd's own: a line over `line_length_limit` -> 500,
    more than `data_size_limit` bytes -> 552, both answered after the lone dot."""

    gate: _Gate
    _counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None and self._original_transport is None:  # not STARTTLS
            if self.gate.open >= self.gate.limit:
                log.warning("smtp: %d connections open; refused %r with 421",
                            self.gate.open, transport.get_extra_info("peername"))
                cast(asyncio.WriteTransport, transport).write(TOO_MANY)
                transport.close()
                return
            self.gate.open += 1
            self._counted = True
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if not self._counted:
            return  # refused in connection_made: nothing was set up
        self._counted = False
        self.gate.open -= 1
        super().connection_lost(error)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802 - aiosmtpd's command name
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        if self.gate.closing:
            await self.push(STOPPING)
            self._writer.close()
            return
        self.gate.in_data += 1  # a stopping daemon waits for the answer to this DATA
        try:
            await self._data_transaction()
        finally:
            self.gate.in_data -= 1

    async def _data_transaction(self) -> None:
        assert self.envelope is not None
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            content, error = await self._read_data()
        except asyncio.CancelledError:
            log.info("Connection lost during DATA")
            self._writer.close()
            raise
        except asyncio.IncompleteReadError:
            return  # the client went away mid-DATA: nothing was accepted
        if error:
            await self.push(error)
            self._set_post_data_state()
            return
        self.envelope.content = self.envelope.original_content = content
        del content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(status)

    async def _read_data(self) -> tuple[bytes, str]:
        """The message up to the lone dot, dot-stuffing undone; or an error status."""
        reader = self._reader
        size_limit = self.data_size_limit
        line_limit = self.line_length_limit
        too_long = "500 Line too long (see RFC5321 4.5.3.1.6)"
        # At a line start a lone dot cannot be found with _END (the CRLF before it is
        # already read): lines there that begin with a dot (or a CR) are read one by one
        # into `head`; from inside any other line on (never right after a CR, which may
        # begin the CRLF of an end mark), the rest is read in blocks into `body`.
        head = bytearray()
        error = ""
        while True:
            first = await reader.readexactly(1)
            if first == b".":
                line = await self._read_line()
                if line is None or len(line) + 1 > line_limit:
                    error = error or too_long  # read to its end: at a line start again
                    continue
                if line == b"\r\n":
                    return (b"", error) if error else (bytes(head), "")
                head += line  # the stuffed dot is dropped
                continue
            while first.endswith(b"\r"):
                first += await reader.readexactly(1)
                if len(first) + 1 > line_limit:
                    error = error or too_long
                    first = first[-1:]
            if not first.endswith(b"\r\n"):
                break
            head += first
        body = bytearray(first)
        line_length = len(first)  # of the line being read, so far (a CR at its end included)
        carry_cr = False
        while True:
            try:
                block = await reader.readuntil(_END)
                last = True
            except asyncio.LimitOverrunError as exc:
                # No end yet within the reader's small window: take what is surely content.
                block = await reader.read(exc.consumed)
                last = False
            if last:
                block = block[:-3]  # keep the CRLF, drop ".\r\n"
            if not error:
                # A CRLF may be split between two blocks: the CR is counted once.
                lines = (b"\r" + block if carry_cr else block).split(b"\r\n")
                first_line = line_length - carry_cr + len(lines[0])
                longest = max(first_line, max(map(len, lines[1:]), default=0))
                line_length = first_line if len(lines) == 1 else len(lines[-1])
                carry_cr = block.endswith(b"\r")
                if longest + 2 > line_limit:
                    error = too_long
                elif size_limit and len(head) + len(body) + len(block) > size_limit:
                    error = "552 Error: Too much mail data"
                if error:
                    head = body = bytearray()  # no longer needed: free them now
                else:
                    body += block
            if last:
                break
        if error:
            return b"", error
        # `body` starts inside a line, so every CRLF-dot in it is a stuffed dot.
        return bytes(head) + body.replace(b"\r\n.", b"\r\n"), ""

    async def _read_line(self) -> bytes | None:
        """One line (with its CRLF), or None when it is over the line limit (then read to
        its end and dropped)."""
        try:
            return await self._reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as exc:
            await self._reader.read(exc.consumed)
            while True:
                try:
                    await self._reader.readuntil(b"\r\n")
                    return None
                except asyncio.LimitOverrunError as more:
                    await self._reader.read(more.consumed)


class BoundedSMTP(_BoundedData, SMTP):
    pass


class BoundedLMTP(_BoundedData, LMTP):
    pass


class IngressController(Controller):
    """Runs the server in its own thread; builds SMTP or LMTP as configured."""

    def __init__(self, spool: Spool, config: SmtpIngressConfig) -> None:
        self.config = config
        self.gate = _Gate(config.max_connections)
        super().__init__(
            SpoolHandler(spool, config.protocol),
            hostname=config.host,
            port=config.port,
            ready_timeout=10,
            data_size_limit=config.max_message_size,
            enable_SMTPUTF8=True,
            server_hostname="mailbot",
        )

    def stop(self, no_assert: bool = False) -> None:
        """Stop listening, let every DATA in progress be stored and answered (up to
        `STOP_GRACE` seconds), then end the sessions. Without the wait, a message could be
        spooled and its `250` never sent: the client retries, and only the Message-ID
        keeps that from being a second message."""
        loop = self.loop
        if self._thread is not None and loop.is_running():
            done = asyncio.run_coroutine_threadsafe(self._close_gently(), loop)
            try:
                done.result(STOP_GRACE + 5)
            except Exception:  # stopping anyway, as before
                log.warning("smtp: could not wait for transactions in progress", exc_info=True)
        super().stop(no_assert)

    async def _close_gently(self) -> None:
        self.gate.closing = True
        if self.server is not None:
            self.server.close()  # no new connections; open sessions go on
        deadline = asyncio.get_running_loop().time() + STOP_GRACE
        while self.gate.in_data and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)  # a poll of a counter in this loop, not a sync

    def factory(self) -> SMTP:
        cls = BoundedLMTP if self.config.protocol == "lmtp" else BoundedSMTP
        server = cls(self.handler, **self.SMTP_kwargs)
        server.gate = self.gate
        return server
