"""Configuration: one TOML file -> frozen dataclasses, validated once at start-up.

Each section is a dataclass; each of its keys is a field made by `setting()`, which
holds the key's default, bounds, choices and conversion. One generic loader
(`load_section`) reads every section from those fields; only the checks that span
several keys are written by hand (`_build`). Every key and its default is documented in
`config/mailbot.toml`, and tests/test_config.py holds the file to the fields.
Nothing here reads the environment except `password_env`, and only when a password is
actually needed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import re
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailbot.configfile import (DEFAULT_STORAGE, ConfigError, StorageLayout,
                                beside, config_path, read_toml)


# Every template the code renders by name (the rest are included by these): one missing
# means a broken install or a wrong [templates] dir, found at start-up, before any
# message is taken, not at the first render.
REQUIRED_TEMPLATES = (
    "mail/ack.txt", "mail/rejection.txt", "mail/status.txt", "mail/digest.txt",
    "mail/reminder_stale.txt", "mail/reminder_postmortem.txt",
    "mail/reminder_postmortem.invite.txt", "mail/postmortem_ack.txt",
    "mail/postmortem_rejection.txt", "mail/comment_note.txt", "cli/show.txt", "cli/check.txt",
    "mail/page.txt", "mail/customer_statement.txt", "mail/directory_review.txt",
    "cli/oncall.txt", "site/declare.txt",
    "mail/postmortem_blame_note.txt", "mail/review_ack.txt", "mail/review_refused.txt",
    "mail/done_ack.txt", "mail/done_refused.txt", "mail/reminder_action_item.txt",
    "mail/weekly_summary.txt", "mail/review_cancel.txt",
)


def package_data(name: str) -> Path:
    """A folder shipped inside the package: `templates` or `sample_config`.

    In a checkout they are symlinks to the top-level templates/ and config/; a wheel holds
    copies. Either way they are next to this file, wherever the process runs (read from
    `__file__` rather than importlib.resources, whose import costs a one-message ingest
    more than reading the config does; the templates must be real files for Jinja2's
    loader anyway)."""
    return Path(__file__).parent / name


def builtin_templates_dir() -> Path:
    """The templates that come with mailbot; `[templates] dir` is searched before them."""
    return package_data("templates")


# ---------------------------------------------------------------- keys as data

# A reader turns a TOML value (already of the right type and in bounds) into the field's
# value, or raises ConfigError; `where` is "[section] key", as messages show it.
Reader = Callable[[Any, str], Any]

_TYPE_NAMES = {str: "a string", int: "a whole number", bool: "true or false",
               list: "a list", dt.time: "a time"}


@dataclass(frozen=True)
class Key:
    """What a TOML key may hold and how it becomes its field's value."""

    kind: type | tuple[type, ...] | None = None  # None: the TOML type of the default
    minimum: int | None = None
    choices: tuple[str, ...] = ()  # checked after `read`
    read: Reader | None = None  # a list's reader gets the whole list (see `_each`)
    items: str = "strings"  # what a list holds, as its error names it
    path: bool = False  # relative to the config file's folder; "" is None if the default is

    def parse(self, value: Any, where: str, default: Any, base: Path) -> Any:
        """The field's value for `value`, or ConfigError in one line."""
        kind = self.kind or _toml_kind(default)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # TOML's true is a Python int: a number key must not take it.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            wanted = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
            raise ConfigError(f"{where} must be {wanted}, not {value!r}")
        if self.minimum is not None and isinstance(value, int) and value < self.minimum:
            raise ConfigError(f"{where} must be at least {self.minimum}, not {value!r}")
        if isinstance(value, list):
            if self.items == "strings" or self.items == "names":
                if not all(isinstance(v, str) for v in value):
                    raise ConfigError(f"{where} must be a list of {self.items}, not {value!r}")
            value = tuple(value)
        if self.read is not None:
            value = self.read(value, where)
        if self.choices and value not in self.choices:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(self.choices)}")
        if self.path:
            value = None if value == "" and default is None else beside(base, value)
        return value


def setting(default: Any = MISSING, **key: Any) -> Any:
    """A dataclass field that is a TOML key: its default (none: the key is required) and
    what `Key` says of its values."""
    return field(default=default, metadata={"key": Key(**key)})


def _toml_kind(default: Any) -> type | tuple[type, ...]:
    if isinstance(default, bool):
        return bool
    if isinstance(default, int):
        return int
    if isinstance(default, tuple):
        return list
    if isinstance(default, dt.time):
        return (str, dt.time)  # "09:00", or a TOML local time
    return str  # strings, paths, required keys


def keys_of(cls: type) -> dict[str, dataclasses.Field[Any]]:
    """The TOML keys of a section's dataclass, by name, in order."""
    return {f.name: f for f in dataclasses.fields(cls) if "key" in f.metadata}


def default_of(f: dataclasses.Field[Any], *, base: Path) -> Any:
    """A key's value when the file does not set it (paths made beside the file)."""
    if f.metadata["key"].path and isinstance(f.default, (str, Path)):
        return beside(base, f.default)
    return f.default


def read_key(cls: type, section: str, key: str, value: Any, *, base: Path) -> Any:
    """One key of `cls`'s section, as its field holds it."""
    f = keys_of(cls)[key]
    return f.metadata["key"].parse(value, f"[{section}] {key}", f.default, base)


def load_section(cls: type, section: str, table: Mapping[str, Any], *, base: Path) -> Any:
    """`cls` from its TOML table: unknown keys refused, each key read as its field says,
    a key left out keeps the field's default."""
    keys = keys_of(cls)
    reject_unknown_keys(table, f"[{section}]", keys)
    values = {}
    for name, f in keys.items():
        if name in table:
            values[name] = read_key(cls, section, name, table[name], base=base)
        elif f.default is MISSING:
            raise ConfigError(f"[{section}] {name} is required")
        elif f.metadata["key"].path:
            values[name] = default_of(f, base=base)
    return cls(**values)


def reject_unknown_keys(table: Mapping[str, Any], where: str, known: Iterable[str]) -> None:
    """ConfigError naming the first key of `table` not in `known` (a typo must not be
    silently ignored); `where` says which table, as the error shows it."""
    known = set(known)
    for key in table:
        if key not in known:
            raise ConfigError(
                f"unknown key {key!r} in {where} (known: {', '.join(sorted(known))})"
            )


# ---------------------------------------------------------------- readers

_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9-]+\.)+[A-Za-z0-9-]+$")
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,75}")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _each(read: Reader) -> Reader:
    """A list's reader that reads each item."""
    return lambda values, where: tuple(read(v, where) for v in values)


def _upper(value: str, where: str) -> str:
    return value.upper()


def _lower(value: str, where: str) -> str:
    return value.lower()


def _address(value: str, where: str) -> str:
    if not _ADDRESS.match(value) or any(c in value for c in "\r\n"):
        raise ConfigError(f"{where}: {value!r} is not an email address")
    return value.lower()


def _sender(value: str, where: str) -> str:
    """[policy] allowed_senders: an address, or a domain (with or without "@")."""
    if not (_ADDRESS.match(value) or _DOMAIN.match(value.lstrip("@"))):
        raise ConfigError(f"{where}: {value!r} is neither an address nor a domain")
    return value.lower().lstrip("@")


def _port(value: int, where: str) -> int:
    if not 0 <= value <= 65535:
        raise ConfigError(f"{where}: {value} is not a port number")
    return value


def _incident_prefix(value: str, where: str) -> str:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,15}", value):
        raise ConfigError(f"{where}: {value!r} must be letters and digits")
    return value.upper()


def _helo_name(value: str, where: str) -> str:
    """A host name or an address literal, nothing that could break the SMTP command line."""
    if value and not (_DOMAIN.match(value) or re.fullmatch(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9-]+",
                                                           value)):
        raise ConfigError(f"{where}: {value!r} is not a host name "
                          "(like mail.example.com) or an address literal (like [192.0.2.1])")
    return value


def _start_at(value: str, where: str) -> str:
    if value not in ("new", "all"):
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"{where}: {value!r} is not new, all or a YYYY-MM-DD date") \
                from None
    return value


def _idle_timeout(value: int, where: str) -> int:
    if value > 29 * 60:
        raise ConfigError(f"{where} must be under 29 minutes (RFC 2177)")
    return value


def _existing_file(value: str, where: str) -> str:
    if value and not Path(value).is_file():
        raise ConfigError(f"{where} {value}: no such file")
    return value


def _timezone(value: str, where: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: {value!r} is not an IANA time zone") from None
    return value


def _clock_time(value: str | dt.time, where: str) -> dt.time:
    if isinstance(value, dt.time):
        return value
    try:
        return dt.time.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not a time like \"09:00\"") from None


def _quiet_hours(value: str, where: str) -> tuple[dt.time, dt.time] | None:
    """"22:00-07:00" -> (22:00, 07:00); "" -> None (no quiet hours)."""
    if not value.strip():
        return None
    try:
        start, end = (dt.time.fromisoformat(p.strip()) for p in value.split("-"))
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not a range like "
                          '"22:00-07:00" (or "" for none)') from None
    if start == end:
        raise ConfigError(f"{where}: {value!r} is empty (start = end)")
    return start, end


def _weekday(value: str, where: str) -> int | None:
    """"monday" (or "mon") -> 0 ... "sunday" -> 6; "" -> None (off)."""
    v = value.strip().lower()
    if not v:
        return None
    for n, day in enumerate(_WEEKDAYS):
        if v == day or (len(v) >= 3 and day.startswith(v)):
            return n
    raise ConfigError(f"{where} must be a day of the week or \"\", not {value!r}")


def _site_url(value: str, where: str) -> str:
    url = value.strip()
    if url and not re.match(r"(?i)^(https?|file)://\S+$", url):
        raise ConfigError(f"publish.url: {url!r} is not an http(s):// or file:// address")
    return url


def _severity_name(value: str, where: str) -> str:
    if not re.fullmatch(r"[A-Za-z]+[0-9]+", value):
        raise ConfigError(f"[[severity]] name {value!r} must be letters then a number, "
                          "like SEV1")
    return value.upper()


def _rewriting_lists(items: tuple[Any, ...], where: str) -> tuple[RewritingList, ...]:
    """Tables of address and author_header."""
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: each entry must be a table like "
                              '{address = "list@example.com", author_header = "X-Original-From"}')
        reject_unknown_keys(item, where, [f.name for f in dataclasses.fields(RewritingList)])
        for key in ("address", "author_header"):
            if not isinstance(item.get(key), str):
                raise ConfigError(f"{where}: {key} is required (a string)")
        header = item["author_header"]
        if not _HEADER_NAME.fullmatch(header) or header.lower() in ("from", "sender"):
            raise ConfigError(f"{where}: author_header {header!r} must name the header the "
                              "list adds for the author (not From or Sender)")
        out.append(RewritingList(address=_address(item["address"], where),
                                 author_header=header.lower()))
    return tuple(out)


# ---------------------------------------------------------------- the sections


@dataclass(frozen=True)
class Severity:
    """A configured severity level: `[[severity]]`; `rank` is its place in the list, not
    a key."""

    name: str = setting(read=_severity_name)  # canonical, e.g. "SEV1"
    description: str = setting("")
    stale_after_minutes: int = setting(60, minimum=1)
    rank: int = 0  # 1 is the most severe


_warned_readable: set[str] = set()


def _read_password(section: str, password_file: str, password_env: str) -> str:
    """A secret from a file or an environment variable, read only when needed."""
    if password_file:
        try:
            secret = Path(password_file).read_text().strip()
            mode = os.stat(password_file).st_mode & 0o777
            if mode & 0o004 and password_file not in _warned_readable:
                # Group access is how the mailbot group reads a root-owned file; others
                # are every user of the machine.
                _warned_readable.add(password_file)
                logging.getLogger("mailbot.config").warning(
                    "[%s] password_file %s is readable by other users (mode %04o): "
                    "chmod o-rwx %s", section, password_file, mode, password_file)
            return secret
        except OSError as exc:
            raise ConfigError(f"[{section}] password_file {password_file}: {exc.strerror}") \
                from None
    if password_env:
        value = os.environ.get(password_env)
        if value is None:
            raise ConfigError(f"[{section}] password_env: ${password_env} is not set")
        return value
    return ""


@dataclass(frozen=True)
class ListConfig:
    """`[list]`: the list mailbot watches and its own address."""

    address: str = setting("incidents@example.com", read=_address)
    bot_address: str = setting("mailbot@example.com", read=_address)
    name: str = setting("Incidents")
    incident_prefix: str = setting("INC", read=_incident_prefix)


@dataclass(frozen=True)
class SmtpIngressConfig:
    """`[ingress.smtp]`: the SMTP/LMTP listener."""

    enabled: bool = setting(True)
    host: str = setting("127.0.0.1")
    port: int = setting(8025, read=_port)
    protocol: str = setting("smtp", choices=("smtp", "lmtp"))
    max_message_size: int = setting(10 * 1024 * 1024, minimum=1024)  # bytes
    max_connections: int = setting(16, minimum=1)


@dataclass(frozen=True)
class ImapIngressConfig:
    """`[ingress.imap]`: the mailbox watched over IMAP."""

    host: str = setting()
    port: int = setting(993, read=_port)
    tls: str = setting("implicit", choices=("implicit", "starttls", "none"))
    username: str = setting("")
    password_file: str = setting("")
    password_env: str = setting("")
    folder: str = setting("INBOX")
    processed_action: str = setting("flag", choices=("flag", "move"))
    processed_flag: str = setting("$MailbotProcessed")
    move_to: str = setting("Processed")
    poll_interval: int = setting(60, minimum=1)
    idle_timeout: int = setting(25 * 60, minimum=1, read=_idle_timeout)
    start_at: str = setting("new", read=_start_at)  # new | all | an ISO date (YYYY-MM-DD)
    batch_size: int = setting(200, minimum=1)
    connect_timeout: int = setting(30, minimum=1)
    # A CA bundle to trust instead of the system's (private CAs).
    ca_file: str = setting("", read=_existing_file)

    def password(self) -> str:
        """Read the password from its file or environment variable."""
        return _read_password("ingress.imap", self.password_file, self.password_env)


@dataclass(frozen=True)
class OutboundConfig:
    """`[outbound]`: the relay mail leaves through, and its retries."""

    smtp_host: str = setting("")
    smtp_port: int = setting(25, read=_port)
    tls: str = setting("none", choices=("none", "starttls", "implicit"))
    helo_name: str = setting("", read=_helo_name)  # empty: this host's name (socket.getfqdn())
    username: str = setting("")
    password_file: str = setting("")
    password_env: str = setting("")
    timeout: int = setting(30, minimum=1)
    retry_initial_seconds: int = setting(30, minimum=1)
    retry_max_seconds: int = setting(3600, minimum=1)

    def password(self) -> str:
        """Read the relay password from its file or environment variable."""
        return _read_password("outbound", self.password_file, self.password_env)


@dataclass(frozen=True)
class StorageConfig(StorageLayout):
    """`[storage]`: where everything is kept; the folders inside it are `StorageLayout`'s."""

    dir: Path = setting(DEFAULT_STORAGE, path=True)


@dataclass(frozen=True)
class RewritingList:
    """A list that rewrites From: to its own address and keeps the author in a header."""

    address: str  # the list's address, as it appears in the rewritten From:
    author_header: str  # lower case: the header the list adds with the original From


@dataclass(frozen=True)
class PolicyConfig:
    """`[policy]`: who may write, and how much mailbot may send."""

    allowed_senders: tuple[str, ...] = setting(("example.com",), read=_each(_sender))
    allow_subdomains: bool = setting(False)
    require_dkim: bool = setting(False)
    trusted_authserv_ids: tuple[str, ...] = setting((), read=_each(_lower))
    from_rewriting_lists: tuple[RewritingList, ...] = setting(
        (), items="tables", read=_rewriting_lists)
    max_mail_per_address_per_hour: int = setting(20, minimum=1)
    max_list_mail_per_hour: int = setting(200, minimum=1)
    accept_direct_to_bot: bool = setting(True)


@dataclass(frozen=True)
class ScheduleConfig:
    """`[schedule]`: the digest, reminders and their time zone."""

    timezone: str = setting("UTC", read=_timezone)
    digest_time: dt.time = setting(dt.time(9, 0), read=_clock_time)
    digest_when_empty: bool = setting(True)
    reminders_cc_list: bool = setting(False)
    # Local (start, end) during which stale reminders for `quiet_severities` wait; None: never.
    quiet_hours: tuple[dt.time, dt.time] | None = setting(
        (dt.time(22, 0), dt.time(7, 0)), kind=str, read=_quiet_hours)
    # Each must be a configured level when set (checked in _build); the default is kept
    # even by a custom [[severity]] list without these levels.
    quiet_severities: tuple[str, ...] = setting(("SEV3", "SEV4"), items="names",
                                                read=_each(_upper))
    # Unanswered stale reminders before the list is told.
    escalate_after_reminders: int = setting(2, minimum=0)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class PostmortemConfig:
    """`[postmortem]`: reminders and the action-item horizon."""

    reminder_days: int = setting(2, minimum=0)
    action_item_horizon_days: int = setting(7, minimum=0)
    leadership: tuple[str, ...] = setting((), read=_each(_address))
    leadership_severities: tuple[str, ...] = setting(("SEV1", "SEV2"), items="names",
                                                     read=_each(_upper))
    review_after_days: int = setting(3, minimum=0)
    # True: blame-oriented sentences are advice, not a refusal.
    blame_is_advice: bool = setting(False)
    # 0 = Monday ... 6 = Sunday; None: no weekly summary. In the file: "monday" or "".
    weekly_summary_day: int | None = setting(0, kind=str, read=_weekday)
    weekly_summary_time: dt.time = setting(dt.time(9, 0), read=_clock_time)


@dataclass(frozen=True)
class OnCallConfig:
    """`[oncall]`: paging escalation, directory review, customer statements."""

    # Minutes a page waits for an answer from the paged side before the next in turn is
    # paged (then the owner), for these severities; an incident without one counts as the
    # strictest. 0: pages never escalate.
    escalate_after_minutes: int = setting(10, minimum=0)
    escalate_severities: tuple[str, ...] = setting(("SEV1", "SEV2"), items="names",
                                                   read=_each(_upper))
    # A directory entry older than this is flagged; 0: never.
    review_after_days: int = setting(90, minimum=0)
    customer_statement: bool = setting(True)  # draft customer updates for the liaison


@dataclass(frozen=True)
class PublishConfig:
    """`[publish]`: the static site."""

    dir: Path | None = setting(None, kind=str, path=True)  # set: `serve` republishes
    # Where the site is served; set: every mail links to the incident's page.
    url: str = setting("", read=_site_url)


@dataclass(frozen=True)
class ServicesConfig:
    """`[services]`: the experts file."""

    file: Path = setting(Path("services.toml"), path=True)


@dataclass(frozen=True)
class LoggingConfig:
    """`[logging]`: how much mailbot logs."""

    level: str = setting("INFO", read=_upper, choices=("DEBUG", "INFO", "WARNING", "ERROR"))


@dataclass(frozen=True)
class TemplatesConfig:
    """`[templates]`: your own wording, searched before the built-in templates."""

    dir: Path | None = setting(None, kind=str, path=True)  # None: the built-in ones


@dataclass(frozen=True)
class Config:
    """The whole configuration, validated once by `load_config`."""

    path: Path
    list: ListConfig
    smtp: SmtpIngressConfig
    imap: ImapIngressConfig | None
    outbound: OutboundConfig
    storage: StorageConfig
    policy: PolicyConfig
    severities: tuple[Severity, ...]
    phases: tuple[str, ...]
    schedule: ScheduleConfig
    postmortem: PostmortemConfig
    publish: PublishConfig
    services_file: Path
    log_level: str = LoggingConfig.level
    templates_dir: Path = field(default_factory=builtin_templates_dir)
    oncall: OnCallConfig = field(default_factory=OnCallConfig)

    def severity(self, name: str) -> Severity | None:
        for sev in self.severities:
            if sev.name == name:
                return sev
        return None


DEFAULT_SEVERITIES = (
    Severity("SEV1", "Critical: the future of the company is at stake. Customers broadly "
             "cannot use the product, data is being lost, or security is breached.", 30, 1),
    Severity("SEV2", "Major: a core feature is down or badly degraded for many customers.", 60, 2),
    Severity("SEV3", "Minor: partial or customer-invisible degradation; a workaround exists.",
             240, 3),
    Severity("SEV4", "Low: a temporary internal outage with no customer impact.", 1440, 4),
)
DEFAULT_PHASES = ("investigating", "identified", "mitigating", "monitoring", "resolved")

# Each TOML table and the dataclass whose fields are its keys.
SECTIONS: dict[str, type] = {
    "list": ListConfig,
    "ingress.smtp": SmtpIngressConfig,
    "ingress.imap": ImapIngressConfig,
    "outbound": OutboundConfig,
    "storage": StorageConfig,
    "policy": PolicyConfig,
    "schedule": ScheduleConfig,
    "postmortem": PostmortemConfig,
    "publish": PublishConfig,
    "oncall": OnCallConfig,
    "services": ServicesConfig,
    "logging": LoggingConfig,
    "templates": TemplatesConfig,
}
_TOP_LEVEL = {name.split(".")[0] for name in SECTIONS} | {"severity", "phases"}


# ---------------------------------------------------------------- loading


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate the configuration file; raise ConfigError with one clear line."""
    path = config_path(path)
    raw = read_toml(path)
    if raw is None:
        raise ConfigError(f"{path}: no such file (`mailbot init-config DIR` writes a "
                          "sample configuration to start from)")
    try:
        return _build(path, raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _table(raw: dict[str, Any], section: str) -> dict[str, Any] | None:
    """The table [a.b] of the file; None if absent."""
    table: Any = raw
    for part in section.split("."):
        table = table.get(part)
        if table is None:
            return None
        if not isinstance(table, dict):
            raise ConfigError(f"[{section}] must be a table")
    return table


def _build(path: Path, raw: dict[str, Any]) -> Config:
    """The sections from their fields, then the checks that span several keys."""
    reject_unknown_keys(raw, "top level", _TOP_LEVEL)
    reject_unknown_keys(_table(raw, "ingress") or {}, "[ingress]",
                        (name.split(".")[1] for name in SECTIONS if name.startswith("ingress.")))
    tables = {name: _table(raw, name) for name in SECTIONS}
    s = {name: load_section(cls, name, tables[name] or {}, base=path)
         for name, cls in SECTIONS.items() if name != "ingress.imap"}

    lst: ListConfig = s["list"]
    if lst.address == lst.bot_address:
        raise ConfigError("[list] address and bot_address must differ")

    imap = None
    if tables["ingress.imap"] is not None:
        imap = load_section(ImapIngressConfig, "ingress.imap", tables["ingress.imap"],
                            base=path)
        if imap.tls == "none" and not _is_loopback(imap.host):
            raise ConfigError(
                "[ingress.imap] tls = \"none\" is only allowed for a loopback host "
                "(the password would cross the network in clear)"
            )

    policy: PolicyConfig = s["policy"]
    if policy.require_dkim and not policy.trusted_authserv_ids:
        raise ConfigError(
            "[policy] require_dkim needs trusted_authserv_ids (whose Authentication-Results "
            "headers to believe)"
        )

    severities = DEFAULT_SEVERITIES
    if "severity" in raw:
        items = raw["severity"]
        if not isinstance(items, list) or not items:
            raise ConfigError("[[severity]] must be a non-empty array of tables")
        severities = tuple(
            dataclasses.replace(load_section(Severity, "severity", item, base=path), rank=rank)
            for rank, item in enumerate(items, start=1))
        if len({s.name for s in severities}) != len(severities):
            raise ConfigError("[[severity]] names must be unique")

    phases = DEFAULT_PHASES
    if "phases" in raw:
        got = raw["phases"]
        if not isinstance(got, list) or not all(isinstance(p, str) and p for p in got):
            raise ConfigError("phases must be a list of names")
        phases = tuple(p.lower() for p in got)
        if "resolved" not in phases:
            raise ConfigError("phases must include \"resolved\"")

    schedule: ScheduleConfig = s["schedule"]
    if "quiet_severities" in (tables["schedule"] or {}):
        known = {sev.name for sev in severities}
        for name in schedule.quiet_severities:
            if name not in known:
                raise ConfigError(f"[schedule] quiet_severities: {name!r} is not a configured "
                                  f"severity ({', '.join(sorted(known))})")

    templates_dir = s["templates"].dir
    if templates_dir is None:
        templates_dir = builtin_templates_dir()
    elif not templates_dir.is_dir():
        raise ConfigError(f"[templates] dir {templates_dir}: no such directory")
    _require_templates(templates_dir)

    return Config(
        path=path,
        list=lst,
        smtp=s["ingress.smtp"],
        imap=imap,
        outbound=s["outbound"],
        storage=s["storage"],
        policy=policy,
        severities=severities,
        phases=phases,
        schedule=schedule,
        postmortem=s["postmortem"],
        publish=s["publish"],
        services_file=s["services"].file,
        log_level=s["logging"].level,
        templates_dir=templates_dir,
        oncall=s["oncall"],
    )


def _require_templates(templates_dir: Path) -> None:
    """ConfigError unless every template mailbot renders is found: in `templates_dir`
    (an override), else among the built-in ones."""
    builtin = builtin_templates_dir()
    search = [templates_dir] if templates_dir == builtin else [templates_dir, builtin]
    missing = [name for name in REQUIRED_TEMPLATES
               if not any((folder / name).is_file() for folder in search)]
    if missing:
        what = "none of the templates" if len(missing) == len(REQUIRED_TEMPLATES) else \
            ", ".join(missing)
        raise ConfigError(
            f"templates missing: {what} (looked in "
            f"{', '.join(str(f) for f in search)}); a broken install? Reinstall mailbot, "
            "or point [templates] dir at a complete copy")


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")
