"""Relays: hand one OutgoingMail to the world, or say why not.

Takes an OutgoingMail from the outbox; hands its bytes to the configured SMTP relay
(`SmtpRelay`: STARTTLS, implicit TLS, login) or, with no relay set, to the Maildir
`<storage>/outbox-sent/` (`MaildirRelay`). A relay raises `TemporaryFailure` (the outbox
retries with backoff) or `PermanentFailure` (the outbox parks the mail for a person).
"""

from __future__ import annotations

import functools
import logging
import os
import smtplib
import socket
import ssl
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Protocol

from mailbot.config import OutboundConfig
from mailbot.durable import fsync_dir, unique_suffix, write_new
from mailbot.models import OutgoingMail

log = logging.getLogger(__name__)


class TemporaryFailure(Exception):
    """Try again later (4xx, connection refused, timeout)."""


class PermanentFailure(Exception):
    """The relay refused for good (5xx): park the mail for a person."""


class RelayMismatch(PermanentFailure):
    """The relay lacks what the configuration requires of it (STARTTLS, AUTH): retrying
    cannot help until a person changes one of the two."""


def reply_text(code: int, message: bytes | str) -> str:
    """An SMTP reply as the relay wrote it: `550 5.1.1 <x>: unknown user`."""
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return f"{code} {' '.join(message.split())}"


class Relay(Protocol):
    def send(self, mail: OutgoingMail) -> None: ...


class MaildirRelay:
    """Delivery into a local Maildir, for the default set-up with no SMTP relay."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = Path(maildir)
        for sub in ("tmp", "new", "cur"):
            (self.maildir / sub).mkdir(parents=True, exist_ok=True)

    def send(self, mail: OutgoingMail) -> None:
        final = self.maildir / "new" / mail.name
        if final.exists() or any((self.maildir / "cur").glob(f"{mail.name}:*")):
            return
        tmp = self.maildir / "tmp" / f"{mail.name}.{unique_suffix()}"
        try:
            write_new(tmp, mail.message)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.rename(tmp, final)
            fsync_dir(final.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise TemporaryFailure(f"maildir {self.maildir}: {exc.strerror}") from exc


class SmtpRelay:
    """Delivery to the configured SMTP relay (STARTTLS / implicit TLS / login)."""

    def __init__(self, config: OutboundConfig) -> None:
        self.config = config
        self._smtp: smtplib.SMTP | None = None
        self._in_session = False

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        helo = c.helo_name or _local_hostname()
        if c.tls == "implicit":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                c.smtp_host, c.smtp_port, timeout=c.timeout, local_hostname=helo,
                context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(c.smtp_host, c.smtp_port, timeout=c.timeout,
                                local_hostname=helo)
        try:
            if c.tls == "starttls":
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    # Sending anyway would put the list's mail (and a password) on the
                    # network in clear; waiting will not make the relay offer it.
                    raise RelayMismatch(
                        f"relay {c.smtp_host}:{c.smtp_port} does not offer STARTTLS, which "
                        "[outbound] tls = \"starttls\" requires (fix the relay, or set tls "
                        "to what it offers)")
                smtp.starttls(context=ssl.create_default_context())
            if c.username:
                smtp.ehlo_or_helo_if_needed()
                if not smtp.has_extn("auth"):
                    raise RelayMismatch(
                        f"relay {c.smtp_host}:{c.smtp_port} does not offer AUTH, and "
                        "[outbound] username is set (fix the relay, or unset "
                        "username)")
                smtp.login(c.username, c.password())
        except BaseException:
            smtp.close()
            raise
        return smtp

    @contextmanager
    def session(self) -> Iterator[None]:
        """Keep one relay connection for several sends (one delivery pass)."""
        self._in_session = True
        try:
            yield
        finally:
            self._in_session = False
            self._drop(quit=True)

    def _drop(self, quit: bool = False) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            if quit:
                smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass
        smtp.close()

    def send(self, mail: OutgoingMail) -> None:
        c = self.config
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            smtp = self._smtp
            try:
                refused = smtp.sendmail(mail.mail_from, list(mail.recipients), mail.message)
            except BaseException:
                self._drop()
                raise
            if not self._in_session:
                self._drop(quit=True)
                if refused:
                    log.warning("outbox %s: relay refused some recipients: %s",
                                mail.name, ", ".join(f"{r} ({reply_text(code, msg)})"
                                                     for r, (code, msg) in refused.items()))
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            text = "; ".join(f"{r}: {reply_text(code, msg)}"
                             for r, (code, msg) in exc.recipients.items())
            if all(500 <= code < 600 for code in codes):
                raise PermanentFailure(f"all recipients refused: {text}") from exc
            raise TemporaryFailure(f"recipients refused: {text}") from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise TemporaryFailure(f"relay login failed: {exc.smtp_code}") from exc
        except smtplib.SMTPResponseException as exc:
            reply = reply_text(exc.smtp_code, exc.smtp_error)
            if 500 <= exc.smtp_code < 600:
                raise PermanentFailure(f"relay said {reply}") from exc
            raise TemporaryFailure(f"relay said {reply}") from exc
        except (smtplib.SMTPException, OSError, socket.timeout) as exc:
            raise TemporaryFailure(f"relay {c.smtp_host}:{c.smtp_port}: {exc}") from exc
        except UnicodeError as exc:
            # smtplib speaks ASCII unless SMTPUTF8 is asked for: an address like
            # alicé@example.com cannot go as it is, now or later.
            raise PermanentFailure(f"address not sendable without SMTPUTF8: {exc}") from exc


def relay_for(config: OutboundConfig, sent_maildir: Path) -> Relay:
    """The relay the configuration asks for."""
    if config.smtp_host:
        return SmtpRelay(config)
    return MaildirRelay(sent_maildir)


@functools.lru_cache(maxsize=1)
def _local_hostname() -> str:
    """The EHLO name: smtplib looks it up (socket.getfqdn, DNS) on every connection."""
    return socket.getfqdn()
