"""SMTP/LMTP ingress on aiosmtpd: bytes from the MTA or list server into the spool.

Says 250 only after `Spool.put` returned, i.e. after the message and its directory entry
are fsync'd. Refuses oversized mail with 552 (aiosmtpd's data_size_limit), and says 452/451
(try later) when the disk cannot take the message, so the sender keeps it.
"""

from __future__ import annotations

import asyncio
import errno
import logging

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailbot.config import SmtpIngressConfig
from mailbot.spool import Spool

log = logging.getLogger(__name__)


class SpoolHandler:
    """aiosmtpd handler: only DATA matters to us."""

    def __init__(self, spool: Spool, protocol: str) -> None:
        self.spool = spool
        self.protocol = protocol

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        if isinstance(content, str):  # only with decode_data=True, which we never set
            content = content.encode("utf-8", "surrogateescape")
        mail_from = (envelope.mail_from or "").replace("\r", "").replace("\n", "")
        if mail_from == "<>":
            mail_from = ""
        # Like a final delivery agent (RFC 5321 4.4), record the envelope sender: the rules
        # need the null sender to recognise bounces.
        raw = b"Return-Path: <" + mail_from.encode("utf-8", "replace") + b">\r\n" + content
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


class IngressController(Controller):
    """Runs the server in its own thread; builds SMTP or LMTP as configured."""

    def __init__(self, spool: Spool, config: SmtpIngressConfig) -> None:
        self.config = config
        super().__init__(
            SpoolHandler(spool, config.protocol),
            hostname=config.host,
            port=config.port,
            ready_timeout=10,
            data_size_limit=config.max_message_size,
            enable_SMTPUTF8=True,
            server_hostname="mailbot",
        )

    def factory(self) -> SMTP:
        cls = LMTP if self.config.protocol == "lmtp" else SMTP
        return cls(self.handler, **self.SMTP_kwargs)
