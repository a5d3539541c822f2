"""Who may write: allowed addresses and domains, optionally with a trusted DKIM pass."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import unquote

from mailbot.config import Config
from mailbot.models import Action, Decision, Facts, ParsedMail
from mailbot.parsing.authresults import parse_authentication_results
from mailbot.parsing.mime import read_mailbox


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


def dkim_passes(mail: ParsedMail, config: Config) -> bool:
    """A trusted Authentication-Results header says dkim=pass for the From domain.

    Only headers whose authserv-id is configured count (RFC 8601 section 5: the
    receiving MTA removes look-alikes from outside; anything else is forgeable). Each is
    read per RFC 8601 from the raw header (`parsing/authresults.py`): the authserv-id is
    the token as written, the way the MTA that strips look-alikes compares it, and only
    a `dkim` result's own `header.d` counts (or, as Gmail writes it, `header.i`'s domain).
    """
    from_domain = mail.from_address.rsplit("@", 1)[-1]
    if "@" not in mail.from_address or not from_domain:
        return False
    for value in mail.raw_header_all("authentication-results"):
        results = parse_authentication_results(value)
        trusted = config.policy.trusted_authserv_ids
        if results is None or results.authserv_id.lower() not in trusted:
            continue
        for result in results.results:
            if result.method != "dkim" or result.result != "pass":
                continue
            domain = _signing_domain(result.prop("header.d"), result.prop("header.i"))
            if domain and (from_domain == domain or from_domain.endswith("." + domain)):
                return True
    return False


def _signing_domain(header_d: str | None, header_i: str | None) -> str:
    """The domain that signed: header.d, else the domain of header.i (`@example.com`),
    which DKIM requires to be d= or below it (RFC 6376 section 3.5, the i= tag)."""
    if header_d:
        return header_d.strip().rstrip(".").lower()
    if header_i and "@" in header_i:
        return header_i.rsplit("@", 1)[1].strip().rstrip(".").lower()
    return ""


def check_sender(mail: ParsedMail, facts: Facts, config: Config,
                 decision: Decision | None) -> Decision | None:
    """Strangers change nothing and hear nothing (no backscatter). Someone paged for an
    incident may write to it (and only to it) like an allowed sender."""
    paged = facts.incident is not None and mail.from_address in facts.incident.paged_addresses
    if not paged and not is_allowed(mail.from_address, config):
        return Decision(Action.IGNORE, reason=f"stranger {mail.from_address or '(no From)'}")
    if config.policy.require_dkim and not dkim_passes(mail, config):
        return Decision(Action.IGNORE, reason=f"no trusted dkim=pass for {mail.from_address}")
    if not config.policy.accept_direct_to_bot:
        recipients = {a.lower() for a in (*mail.to, *mail.cc)}
        if config.list.address not in recipients:
            return Decision(Action.IGNORE, reason="not sent to the list")
    return None


_LIST_POST = re.compile(r"<\s*mailto:([^>?\s]+)", re.IGNORECASE)
_LIST_ID = re.compile(r"<([^<>\s]+)>\s*$")


def list_addresses(mail: ParsedMail, config: Config) -> set[str]:
    """Addresses that belong to a mailing list, not to a person: ours, the configured
    rewriting lists, and any list the message itself passed (its `List-Post:` address,
    or an address that its `List-Id:` spells, as Mailman and Google Groups write them)."""
    found = {config.list.address, config.list.bot_address,
             *(r.address for r in config.policy.from_rewriting_lists)}
    for value in mail.raw_header_all("list-post"):
        for address in _LIST_POST.findall(value):
            found.add(unquote(address).lower())
    ids = set()
    for value in mail.raw_header_all("list-id"):
        match = _LIST_ID.search(value)
        if match:
            ids.add(match.group(1).lower())
    if ids and "@" in mail.from_address and mail.from_address.replace("@", ".", 1) in ids:
        found.add(mail.from_address)
    return found


def original_author(mail: ParsedMail, config: Config) -> tuple[str, str] | None:
    """For mail whose From is a configured From-rewriting list: the real author's
    (name, address) from the one header that list adds, or None.

    The header must be there exactly once and name exactly one mailbox: a second copy was
    written by someone else (the sender can write any header), and Mailman adds the
    author to a Reply-To the sender may already have filled. A list address is never an
    author: otherwise any post through such a list would count as its allowed domain."""
    entry = next((r for r in config.policy.from_rewriting_lists
                  if r.address == mail.from_address), None)
    if entry is None:
        return None
    values = mail.raw_header_all(entry.author_header)
    if len(values) != 1:
        return None
    name, address = read_mailbox(values[0])
    if not address or address in list_addresses(mail, config):
        return None
    return name, address


def unmunge(mail: ParsedMail, config: Config) -> ParsedMail:
    """`mail` with its real author when a configured list rewrote From to its address; a
    From of "" (nobody may write as a list) for any other list address in From, or when
    the author cannot be trusted."""
    if (mail.from_address == config.list.bot_address  # our own mail: rules/loops.py's
            or mail.from_address not in list_addresses(mail, config)):
        return mail
    found = original_author(mail, config)
    if found:
        name, address = found
        return dataclasses.replace(mail, from_address=address, from_name=name)
    defect = (f"From is the list address {mail.from_address}, without one trusted author "
              "header ([policy] from_rewriting_lists)")
    return dataclasses.replace(mail, from_address="", from_name="",
                               defects=(*mail.defects, defect))
