"""Who may write: allowed addresses and domains, optionally with a trusted DKIM pass."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mailbot.config import Config
from mailbot.models import Decision, ParsedMail

if TYPE_CHECKING:
    from mailbot.rules import Facts


def is_allowed(address: str, config: Config) -> bool:
    """The address or its domain is on [policy] allowed_senders."""
    address = address.lower()
    if "@" not in address:
        return False
    domain = address.rsplit("@", 1)[1]
    for entry in config.policy.allowed_senders:
        if "@" in entry:
            if address == entry:
                return True
        elif domain == entry or (config.policy.allow_subdomains and domain.endswith("." + entry)):
            return True
    return False


_RESULT = re.compile(r"\bdkim\s*=\s*(\w+)([^;]*)", re.IGNORECASE)
_HEADER_D = re.compile(r"\bheader\.d\s*=\s*\"?([A-Za-z0-9.-]+)", re.IGNORECASE)


def dkim_passes(mail: ParsedMail, config: Config) -> bool:
    """A trusted Authentication-Results header says dkim=pass for the From domain.

    Only headers whose authserv-id is configured count (RFC 8601 section 5: the
    receiving MTA removes look-alikes from outside; anything else is forgeable).
    """
    from_domain = mail.from_address.rsplit("@", 1)[-1]
    for value in mail.header_all("authentication-results"):
        authserv = value.split(";", 1)[0].strip().split()[0].lower() if value.strip() else ""
        if authserv not in config.policy.trusted_authserv_ids:
            continue
        for match in _RESULT.finditer(value):
            if match.group(1).lower() != "pass":
                continue
            d = _HEADER_D.search(match.group(2))
            if d and (from_domain == d.group(1).lower()
                      or from_domain.endswith("." + d.group(1).lower())):
                return True
    return False


def check_sender(mail: ParsedMail, facts: "Facts", config: Config,
                 decision: Decision | None) -> Decision | None:
    """Strangers change nothing and hear nothing (no backscatter)."""
    if not is_allowed(mail.from_address, config):
        return Decision("ignore", reason=f"stranger {mail.from_address or '(no From)'}")
    if config.policy.require_dkim and not dkim_passes(mail, config):
        return Decision("ignore", reason=f"no trusted dkim=pass for {mail.from_address}")
    if not config.policy.accept_direct_to_bot:
        recipients = {a.lower() for a in (*mail.to, *mail.cc)}
        if config.list.address not in recipients:
            return Decision("ignore", reason="not sent to the list")
    return None


# Where lists that rewrite From (DMARC mitigation) keep the real author, in order.
_ORIGINAL_AUTHOR_HEADERS = ("x-original-from", "x-original-sender", "reply-to")


def original_author(mail: ParsedMail, config: Config) -> tuple[str, str] | None:
    """For mail whose From is the list itself (Mailman's munge_from, Google Groups): the
    real author's (name, address), or None if the list left no trace of it.

    The list's own address is never an author: otherwise any post through such a list
    would count as coming from the allowed domain."""
    from email.utils import getaddresses

    for header in _ORIGINAL_AUTHOR_HEADERS:
        for value in mail.header_all(header):
            try:
                pairs = getaddresses([value])
            except Exception:  # noqa: BLE001 - a mangled header just does not count
                continue
            for name, address in pairs:
                address = address.strip().lower()
                if "@" in address and address not in (config.list.address,
                                                       config.list.bot_address):
                    return name.strip(), address
    return None


def unmunge(mail: ParsedMail, config: Config) -> ParsedMail:
    """`mail` with its real author when a list rewrote From to the list's address; a From
    of "" (nobody may write as the list) when the author cannot be found."""
    if mail.from_address != config.list.address:
        return mail
    import dataclasses

    found = original_author(mail, config)
    name, address = found if found else ("", "")
    return dataclasses.replace(mail, from_address=address, from_name=name)
