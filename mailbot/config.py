"""Configuration: one TOML file -> frozen dataclasses, validated once at start-up.

Every key and its default is documented in `config/mailbot.toml`. Nothing here reads the
environment except `password_env`, and only when a password is actually needed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_CONFIG = Path("config/mailbot.toml")

# Every template the code renders by name (the rest are included by these): one missing
# means a broken install or a wrong [templates] dir, found at start-up, before any
# message is taken, not at the first render.
REQUIRED_TEMPLATES = (
    "mail/ack.txt", "mail/rejection.txt", "mail/status.txt", "mail/digest.txt",
    "mail/reminder_stale.txt", "mail/reminder_postmortem.txt",
    "mail/reminder_postmortem.invite.txt", "mail/postmortem_ack.txt",
    "mail/postmortem_rejection.txt", "mail/comment_note.txt", "cli/show.txt", "cli/check.txt",
    "mail/page.txt", "mail/customer_statement.txt", "mail/directory_review.txt", "cli/oncall.txt", "site/declare.txt",
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


class ConfigError(Exception):
    """The configuration is unusable; the message says which key and why."""


@dataclass(frozen=True)
class Severity:
    """A configured severity level: `[[severity]]`."""

    name: str  # canonical, e.g. "SEV1"
    description: str
    stale_after_minutes: int
    rank: int  # 1 is the most severe


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

    address: str = "incidents@example.com"
    bot_address: str = "mailbot@example.com"
    name: str = "Incidents"
    incident_prefix: str = "INC"


@dataclass(frozen=True)
class SmtpIngressConfig:
    """`[ingress.smtp]`: the SMTP/LMTP listener."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8025
    protocol: str = "smtp"  # smtp | lmtp
    max_message_size: int = 10 * 1024 * 1024
    max_connections: int = 16


@dataclass(frozen=True)
class ImapIngressConfig:
    """`[ingress.imap]`: the mailbox watched over IMAP."""

    host: str
    port: int = 993
    tls: str = "implicit"  # implicit | starttls | none
    username: str = ""
    password_file: str = ""
    password_env: str = ""
    folder: str = "INBOX"
    processed_action: str = "flag"  # flag | move
    processed_flag: str = "$MailbotProcessed"
    move_to: str = "Processed"
    poll_interval: int = 60
    idle_timeout: int = 25 * 60
    start_at: str = "new"  # new | all | an ISO date (YYYY-MM-DD)
    batch_size: int = 200
    connect_timeout: int = 30
    ca_file: str = ""  # a CA bundle to trust instead of the system's (private CAs)

    def password(self) -> str:
        """Read the password from its file or environment variable."""
        return _read_password("ingress.imap", self.password_file, self.password_env)


@dataclass(frozen=True)
class OutboundConfig:
    """`[outbound]`: the relay mail leaves through, and its retries."""

    smtp_host: str = ""
    smtp_port: int = 25
    tls: str = "none"  # none | starttls | implicit
    helo_name: str = ""  # empty: this host's name (socket.getfqdn())
    username: str = ""
    password_file: str = ""
    password_env: str = ""
    timeout: int = 30
    retry_initial_seconds: int = 30
    retry_max_seconds: int = 3600

    def password(self) -> str:
        """Read the relay password from its file or environment variable."""
        return _read_password("outbound", self.password_file, self.password_env)


@dataclass(frozen=True)
class StorageConfig:
    """`[storage]`: where everything is kept, and the folders inside it."""

    dir: Path = Path("var")

    @property
    def spool_dir(self) -> Path:
        return self.dir / "spool"

    @property
    def db_dir(self) -> Path:
        return self.dir / "db"

    @property
    def archive_dir(self) -> Path:
        return self.dir / "archive"

    @property
    def outbox_dir(self) -> Path:
        return self.dir / "outbox"

    @property
    def sent_maildir(self) -> Path:
        return self.dir / "outbox-sent"

    @property
    def template_cache_dir(self) -> Path:
        return self.dir / "cache" / "templates"


@dataclass(frozen=True)
class RewritingList:
    """A list that rewrites From: to its own address and keeps the author in a header."""

    address: str  # the list's address, as it appears in the rewritten From:
    author_header: str  # lower case: the header the list adds with the original From


@dataclass(frozen=True)
class PolicyConfig:
    """`[policy]`: who may write, and how much mailbot may send."""

    allowed_senders: tuple[str, ...] = ("example.com",)
    allow_subdomains: bool = False
    require_dkim: bool = False
    trusted_authserv_ids: tuple[str, ...] = ()
    from_rewriting_lists: tuple[RewritingList, ...] = ()
    max_mail_per_address_per_hour: int = 20
    max_list_mail_per_hour: int = 200
    accept_direct_to_bot: bool = True


@dataclass(frozen=True)
class ScheduleConfig:
    """`[schedule]`: the digest, reminders and their time zone."""

    timezone: str = "UTC"
    digest_time: dt.time = dt.time(9, 0)
    digest_when_empty: bool = True
    reminders_cc_list: bool = False
    # Local (start, end) during which stale reminders for `quiet_severities` wait; None: never.
    quiet_hours: tuple[dt.time, dt.time] | None = (dt.time(22, 0), dt.time(7, 0))
    quiet_severities: tuple[str, ...] = ("SEV3", "SEV4")
    escalate_after_reminders: int = 2  # unanswered stale reminders before the list is told

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class PostmortemConfig:
    """`[postmortem]`: reminders and the action-item horizon."""

    reminder_days: int = 2
    action_item_horizon_days: int = 7
    leadership: tuple[str, ...] = ()
    leadership_severities: tuple[str, ...] = ("SEV1", "SEV2")
    review_after_days: int = 3
    blame_is_advice: bool = False  # true: blame-oriented sentences are advice, not a refusal
    weekly_summary_day: int | None = 0  # 0 = Monday ... 6 = Sunday; None: no weekly summary
    weekly_summary_time: dt.time = dt.time(9, 0)


@dataclass(frozen=True)
class OnCallConfig:
    """`[oncall]`: paging escalation, directory review, customer statements."""

    # Minutes a page waits for an answer from the paged side before the next in turn is
    # paged (then the owner), for these severities; an incident without one counts as the
    # strictest. 0: pages never escalate.
    escalate_after_minutes: int = 10
    escalate_severities: tuple[str, ...] = ("SEV1", "SEV2")
    review_after_days: int = 90  # a directory entry older than this is flagged; 0: never
    customer_statement: bool = True  # draft customer updates for the liaison


@dataclass(frozen=True)
class PublishConfig:
    """`[publish]`: the static site."""

    dir: Path | None = None  # set: `serve` republishes after each change
    url: str = ""  # where the site is served; set: every mail links to the incident's page


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
    log_level: str = "INFO"
    templates_dir: Path = field(default_factory=builtin_templates_dir)
    oncall: OnCallConfig = field(default_factory=OnCallConfig)

    def severity(self, name: str) -> Severity | None:
        for sev in self.severities:
            if sev.name == name:
                return sev
        return None


DEFAULT_SEVERITIES = (
    Severity("SEV1", "Critical: the future of the company is at stake; customers broadly "
             "cannot use the product, data loss, or a security breach.", 30, 1),
    Severity("SEV2", "Major: a core feature is down or badly degraded for many customers.", 60, 2),
    Severity("SEV3", "Minor: a partial or customer-invisible degradation; a workaround exists.",
             240, 3),
    Severity("SEV4", "Low: a temporary internal outage with no customer impact.", 1440, 4),
)
DEFAULT_PHASES = ("investigating", "identified", "mitigating", "monitoring", "resolved")

_KNOWN: dict[str, set[str]] = {
    "": {"list", "ingress", "outbound", "storage", "policy", "severity", "phases",
         "schedule", "postmortem", "publish", "services", "logging", "templates", "oncall"},
    "list": {"address", "bot_address", "name", "incident_prefix"},
    "ingress": {"smtp", "imap"},
    "ingress.smtp": {"enabled", "host", "port", "protocol", "max_message_size",
                     "max_connections"},
    "ingress.imap": {"host", "port", "tls", "username", "password_file", "password_env",
                     "folder", "processed_action", "processed_flag", "move_to",
                     "poll_interval", "idle_timeout", "start_at", "batch_size",
                     "connect_timeout", "ca_file"},
    "outbound": {"smtp_host", "smtp_port", "tls", "helo_name", "username", "password_file",
                 "password_env", "timeout", "retry_initial_seconds", "retry_max_seconds"},
    "storage": {"dir"},
    "policy": {"allowed_senders", "allow_subdomains", "require_dkim", "trusted_authserv_ids",
               "from_rewriting_lists", "max_mail_per_address_per_hour",
               "max_list_mail_per_hour", "accept_direct_to_bot"},
    "policy.from_rewriting_lists": {"address", "author_header"},
    "severity": {"name", "description", "stale_after_minutes"},
    "schedule": {"timezone", "digest_time", "digest_when_empty", "reminders_cc_list",
                 "quiet_hours", "quiet_severities", "escalate_after_reminders"},
    "postmortem": {"reminder_days", "action_item_horizon_days", "leadership",
                   "leadership_severities", "review_after_days", "blame_is_advice",
                   "weekly_summary_day", "weekly_summary_time"},
    "publish": {"dir", "url"},
    "oncall": {"escalate_after_minutes", "escalate_severities", "review_after_days",
               "customer_statement"},
    "services": {"file"},
    "logging": {"level"},
    "templates": {"dir"},
}

_TYPE_NAMES = {str: "a string", int: "a whole number", bool: "true or false",
               list: "a list", dt.time: "a time"}
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9-]+\.)+[A-Za-z0-9-]+$")


def _check_keys(section: str, table: dict[str, Any]) -> None:
    reject_unknown_keys(table, f"[{section}]" if section else "top level", _KNOWN[section])


def reject_unknown_keys(table: Mapping[str, Any], where: str, known: Iterable[str]) -> None:
    """ConfigError naming the first key of `table` not in `known` (a typo must not be
    silently ignored); `where` says which table, as the error shows it."""
    known = set(known)
    for key in table:
        if key not in known:
            raise ConfigError(
                f"unknown key {key!r} in {where} (known: {', '.join(sorted(known))})"
            )


_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _weekday(value: str) -> int | None:
    """"monday" (or "mon") -> 0 ... "sunday" -> 6; "" -> None (off)."""
    v = value.strip().lower()
    if not v:
        return None
    for n, day in enumerate(_WEEKDAYS):
        if v == day or (len(v) >= 3 and day.startswith(v)):
            return n
    raise ConfigError(f"[postmortem] weekly_summary_day must be a day of the week or \"\", "
                      f"not {value!r}")


def _clock_time(section: str, key: str, value: Any) -> dt.time:
    if isinstance(value, dt.time):
        return value
    try:
        return dt.time.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"[{section}] {key} must be a time like \"09:00\", not {value!r}") \
            from None


def _get(table: dict[str, Any], section: str, key: str, kind: type, default: Any,
         *, minimum: int | None = None) -> Any:
    if key not in table:
        return default
    value = table[key]
    if kind is int and isinstance(value, bool):
        raise ConfigError(f"[{section}] {key} must be a whole number, not {value!r}")
    if not isinstance(value, kind):
        names = kind if isinstance(kind, tuple) else (kind,)
        wanted = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in names)
        raise ConfigError(f"[{section}] {key} must be {wanted}, not {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"[{section}] {key} must be at least {minimum}, not {value!r}")
    return value


def _quiet_hours(value: str | None) -> tuple[dt.time, dt.time] | None:
    """"22:00-07:00" -> (22:00, 07:00); "" -> None (no quiet hours); unset -> the default."""
    if value is None:
        return ScheduleConfig.quiet_hours
    if not value.strip():
        return None
    try:
        start, end = (dt.time.fromisoformat(p.strip()) for p in value.split("-"))
    except ValueError:
        raise ConfigError(f"[schedule] quiet_hours: {value!r} is not a range like "
                          '"22:00-07:00" (or "" for none)') from None
    if start == end:
        raise ConfigError(f"[schedule] quiet_hours: {value!r} is empty (start = end)")
    return start, end


def _quiet_severities(table: dict[str, Any], severities: Iterable[Severity]) -> tuple[str, ...]:
    """The levels quiet hours apply to; a level named here must be configured (the
    default names levels that a custom [[severity]] list may not have, and is kept)."""
    if "quiet_severities" not in table:
        return ScheduleConfig.quiet_severities
    raw = _get(table, "schedule", "quiet_severities", list, [])
    if not all(isinstance(n, str) for n in raw):
        raise ConfigError(f"[schedule] quiet_severities must be a list of names, not {raw!r}")
    names = [n.upper() for n in raw]
    known = {s.name for s in severities}
    for name in names:
        if name not in known:
            raise ConfigError(f"[schedule] quiet_severities: {name!r} is not a configured "
                              f"severity ({', '.join(sorted(known))})")
    return tuple(names)


def _address(section: str, key: str, value: str) -> str:
    if not _ADDRESS.match(value) or any(c in value for c in "\r\n"):
        raise ConfigError(f"[{section}] {key}: {value!r} is not an email address")
    return value.lower()


def _port(section: str, key: str, value: int) -> int:
    if not 0 <= value <= 65535:
        raise ConfigError(f"[{section}] {key}: {value} is not a port number")
    return value


def _choice(section: str, key: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"[{section}] {key}: {value!r} is not one of {', '.join(choices)}")
    return value


def read_toml(path: Path) -> dict[str, Any] | None:
    """A TOML file as a dict; None if it does not exist; ConfigError in one line else."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate the configuration file; raise ConfigError with one clear line."""
    if path is None:
        path = os.environ.get("MAILBOT_CONFIG") or DEFAULT_CONFIG
    path = Path(path)
    raw = read_toml(path)
    if raw is None:
        raise ConfigError(f"{path}: no such file (`mailbot init-config DIR` writes a "
                          "sample configuration to start from)")
    try:
        return _build(path, raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _build(path: Path, raw: dict[str, Any]) -> Config:
    _check_keys("", raw)

    t = raw.get("list", {})
    _check_keys("list", t)
    prefix = _get(t, "list", "incident_prefix", str, "INC")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,15}", prefix):
        raise ConfigError(f"[list] incident_prefix: {prefix!r} must be letters and digits")
    lst = ListConfig(
        address=_address("list", "address", _get(t, "list", "address", str, ListConfig.address)),
        bot_address=_address(
            "list", "bot_address", _get(t, "list", "bot_address", str, ListConfig.bot_address)
        ),
        name=_get(t, "list", "name", str, ListConfig.name),
        incident_prefix=prefix.upper(),
    )
    if lst.address == lst.bot_address:
        raise ConfigError("[list] address and bot_address must differ")

    ingress = raw.get("ingress", {})
    _check_keys("ingress", ingress)
    t = ingress.get("smtp", {})
    _check_keys("ingress.smtp", t)
    smtp = SmtpIngressConfig(
        enabled=_get(t, "ingress.smtp", "enabled", bool, True),
        host=_get(t, "ingress.smtp", "host", str, "127.0.0.1"),
        port=_port("ingress.smtp", "port", _get(t, "ingress.smtp", "port", int, 8025)),
        protocol=_choice("ingress.smtp", "protocol",
                         _get(t, "ingress.smtp", "protocol", str, "smtp"), ("smtp", "lmtp")),
        max_message_size=_get(t, "ingress.smtp", "max_message_size", int, 10 * 1024 * 1024,
                              minimum=1),
        max_connections=_get(t, "ingress.smtp", "max_connections", int, 16, minimum=1),
    )
    if smtp.max_message_size < 1024:
        raise ConfigError("[ingress.smtp] max_message_size must be at least 1024 bytes")

    imap = None
    if "imap" in ingress:
        t = ingress["imap"]
        _check_keys("ingress.imap", t)
        s = "ingress.imap"
        if "host" not in t:
            raise ConfigError("[ingress.imap] host is required")
        start_at = _get(t, s, "start_at", str, "new")
        if start_at not in ("new", "all"):
            try:
                dt.date.fromisoformat(start_at)
            except ValueError:
                raise ConfigError(
                    f"[ingress.imap] start_at: {start_at!r} is not new, all or a YYYY-MM-DD date"
                ) from None
        imap = ImapIngressConfig(
            host=_get(t, s, "host", str, ""),
            port=_port(s, "port", _get(t, s, "port", int, 993)),
            tls=_choice(s, "tls", _get(t, s, "tls", str, "implicit"),
                        ("implicit", "starttls", "none")),
            username=_get(t, s, "username", str, ""),
            password_file=_get(t, s, "password_file", str, ""),
            password_env=_get(t, s, "password_env", str, ""),
            folder=_get(t, s, "folder", str, "INBOX"),
            processed_action=_choice(s, "processed_action",
                                     _get(t, s, "processed_action", str, "flag"),
                                     ("flag", "move")),
            processed_flag=_get(t, s, "processed_flag", str, "$MailbotProcessed"),
            move_to=_get(t, s, "move_to", str, "Processed"),
            poll_interval=_get(t, s, "poll_interval", int, 60, minimum=1),
            idle_timeout=_get(t, s, "idle_timeout", int, 25 * 60, minimum=1),
            start_at=start_at,
            batch_size=_get(t, s, "batch_size", int, 200, minimum=1),
            connect_timeout=_get(t, s, "connect_timeout", int, 30, minimum=1),
            ca_file=_get(t, s, "ca_file", str, ""),
        )
        if imap.ca_file and not Path(imap.ca_file).is_file():
            raise ConfigError(f"[ingress.imap] ca_file {imap.ca_file}: no such file")
        if imap.tls == "none" and not _is_loopback(imap.host):
            raise ConfigError(
                "[ingress.imap] tls = \"none\" is only allowed for a loopback host "
                "(the password would cross the network in clear)"
            )
        if imap.idle_timeout > 29 * 60:
            raise ConfigError("[ingress.imap] idle_timeout must be under 29 minutes (RFC 2177)")

    t = raw.get("outbound", {})
    _check_keys("outbound", t)
    outbound = OutboundConfig(
        smtp_host=_get(t, "outbound", "smtp_host", str, ""),
        smtp_port=_port("outbound", "smtp_port", _get(t, "outbound", "smtp_port", int, 25)),
        tls=_choice("outbound", "tls", _get(t, "outbound", "tls", str, "none"),
                    ("none", "starttls", "implicit")),
        helo_name=_helo_name(_get(t, "outbound", "helo_name", str, "")),
        username=_get(t, "outbound", "username", str, ""),
        password_file=_get(t, "outbound", "password_file", str, ""),
        password_env=_get(t, "outbound", "password_env", str, ""),
        timeout=_get(t, "outbound", "timeout", int, 30, minimum=1),
        retry_initial_seconds=_get(t, "outbound", "retry_initial_seconds", int, 30, minimum=1),
        retry_max_seconds=_get(t, "outbound", "retry_max_seconds", int, 3600, minimum=1),
    )

    t = raw.get("storage", {})
    _check_keys("storage", t)
    storage = StorageConfig(dir=_beside(path, _get(t, "storage", "dir", str, "var")))

    t = raw.get("policy", {})
    _check_keys("policy", t)
    allowed = _get(t, "policy", "allowed_senders", list, ["example.com"])
    for entry in allowed:
        if not isinstance(entry, str) or not (
            _ADDRESS.match(entry) or _DOMAIN.match(entry.lstrip("@"))
        ):
            raise ConfigError(
                f"[policy] allowed_senders: {entry!r} is neither an address nor a domain"
            )
    policy = PolicyConfig(
        allowed_senders=tuple(e.lower().lstrip("@") for e in allowed),
        allow_subdomains=_get(t, "policy", "allow_subdomains", bool, False),
        require_dkim=_get(t, "policy", "require_dkim", bool, False),
        trusted_authserv_ids=tuple(
            x.lower() for x in _get(t, "policy", "trusted_authserv_ids", list, [])
        ),
        max_mail_per_address_per_hour=_get(t, "policy", "max_mail_per_address_per_hour", int,
                                           20, minimum=1),
        max_list_mail_per_hour=_get(t, "policy", "max_list_mail_per_hour", int, 200, minimum=1),
        from_rewriting_lists=_rewriting_lists(
            _get(t, "policy", "from_rewriting_lists", list, [])),
        accept_direct_to_bot=_get(t, "policy", "accept_direct_to_bot", bool, True),
    )
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
        built = []
        for rank, item in enumerate(items, start=1):
            _check_keys("severity", item)
            name = _get(item, "severity", "name", str, "")
            if not re.fullmatch(r"[A-Za-z]+[0-9]+", name):
                raise ConfigError(
                    f"[[severity]] name {name!r} must be letters then a number, like SEV1"
                )
            built.append(Severity(
                name=name.upper(),
                description=_get(item, "severity", "description", str, ""),
                stale_after_minutes=_get(item, "severity", "stale_after_minutes", int, 60,
                                         minimum=1),
                rank=rank,
            ))
        if len({s.name for s in built}) != len(built):
            raise ConfigError("[[severity]] names must be unique")
        severities = tuple(built)

    phases = DEFAULT_PHASES
    if "phases" in raw:
        got = raw["phases"]
        if not isinstance(got, list) or not all(isinstance(p, str) and p for p in got):
            raise ConfigError("phases must be a list of names")
        phases = tuple(p.lower() for p in got)
        if "resolved" not in phases:
            raise ConfigError("phases must include \"resolved\"")

    t = raw.get("schedule", {})
    _check_keys("schedule", t)
    tzname = _get(t, "schedule", "timezone", str, "UTC")
    try:
        ZoneInfo(tzname)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"[schedule] timezone: {tzname!r} is not an IANA time zone") from None
    digest_time = _get(t, "schedule", "digest_time", (str, dt.time), "09:00")
    if isinstance(digest_time, str):
        try:
            digest_time = dt.time.fromisoformat(digest_time)
        except ValueError:
            raise ConfigError(
                f"[schedule] digest_time: {digest_time!r} is not a time like 09:00"
            ) from None
    schedule = ScheduleConfig(
        timezone=tzname,
        digest_time=digest_time,
        digest_when_empty=_get(t, "schedule", "digest_when_empty", bool, True),
        reminders_cc_list=_get(t, "schedule", "reminders_cc_list", bool, False),
        quiet_hours=_quiet_hours(_get(t, "schedule", "quiet_hours", str, None)),
        quiet_severities=_quiet_severities(t, severities),
        escalate_after_reminders=_get(t, "schedule", "escalate_after_reminders", int,
                                      ScheduleConfig.escalate_after_reminders, minimum=0),
    )

    t = raw.get("postmortem", {})
    _check_keys("postmortem", t)
    postmortem = PostmortemConfig(
        reminder_days=_get(t, "postmortem", "reminder_days", int, 2, minimum=0),
        action_item_horizon_days=_get(t, "postmortem", "action_item_horizon_days", int, 7,
                                      minimum=0),
        leadership=tuple(
            _address("postmortem", "leadership", a)
            for a in _get(t, "postmortem", "leadership", list, [])
        ),
        leadership_severities=tuple(
            s.upper() for s in _get(t, "postmortem", "leadership_severities", list,
                                    ["SEV1", "SEV2"])
        ),
        review_after_days=_get(t, "postmortem", "review_after_days", int, 3, minimum=0),
        blame_is_advice=_get(t, "postmortem", "blame_is_advice", bool, False),
        weekly_summary_day=_weekday(_get(t, "postmortem", "weekly_summary_day", str, "monday")),
        weekly_summary_time=_clock_time(
            "postmortem", "weekly_summary_time",
            _get(t, "postmortem", "weekly_summary_time", (str, dt.time), "09:00")),
    )

    t = raw.get("publish", {})
    _check_keys("publish", t)
    pub_dir = _get(t, "publish", "dir", str, "")
    pub_url = _get(t, "publish", "url", str, "").strip()
    if pub_url and not re.match(r"(?i)^(https?|file)://\S+$", pub_url):
        raise ConfigError(f"publish.url: {pub_url!r} is not an http(s):// or file:// address")
    publish = PublishConfig(dir=_beside(path, pub_dir) if pub_dir else None, url=pub_url)

    t = raw.get("oncall", {})
    _check_keys("oncall", t)
    oncall = OnCallConfig(
        escalate_after_minutes=_get(t, "oncall", "escalate_after_minutes", int, 10,
                                    minimum=0),
        escalate_severities=tuple(s.upper() for s in _get(
            t, "oncall", "escalate_severities", list, ["SEV1", "SEV2"])),
        review_after_days=_get(t, "oncall", "review_after_days", int, 90, minimum=0),
        customer_statement=_get(t, "oncall", "customer_statement", bool, True),
    )

    t = raw.get("services", {})
    _check_keys("services", t)
    services_file = _beside(path, _get(t, "services", "file", str, "services.toml"))

    t = raw.get("logging", {})
    _check_keys("logging", t)
    level = _choice("logging", "level", _get(t, "logging", "level", str, "INFO").upper(),
                    ("DEBUG", "INFO", "WARNING", "ERROR"))

    t = raw.get("templates", {})
    _check_keys("templates", t)
    templates_dir = builtin_templates_dir()
    if "dir" in t:
        templates_dir = _beside(path, _get(t, "templates", "dir", str, ""))
        if not templates_dir.is_dir():
            raise ConfigError(f"[templates] dir {templates_dir}: no such directory")
    _require_templates(templates_dir)

    return Config(
        path=path,
        list=lst,
        smtp=smtp,
        imap=imap,
        outbound=outbound,
        storage=storage,
        policy=policy,
        severities=severities,
        phases=phases,
        schedule=schedule,
        postmortem=postmortem,
        publish=publish,
        services_file=services_file,
        log_level=level,
        templates_dir=templates_dir,
        oncall=oncall,
    )


def _beside(config_path: Path, value: str) -> Path:
    """A path from the config file: a relative one is relative to the file's folder, not
    to the directory mailbot happens to run in (a cron job runs in $HOME)."""
    path = Path(value)
    return path if path.is_absolute() else config_path.absolute().parent / path


def _helo_name(value: str) -> str:
    """[outbound] helo_name: a host name or an address literal, nothing that could break
    the SMTP command line."""
    if value and not (_DOMAIN.match(value) or re.fullmatch(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9-]+",
                                                           value)):
        raise ConfigError(f"[outbound] helo_name: {value!r} is not a host name "
                          "(like mail.example.com) or an address literal (like [192.0.2.1])")
    return value


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


_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,75}")


def _rewriting_lists(items: list[Any]) -> tuple[RewritingList, ...]:
    """[policy] from_rewriting_lists: tables of address and author_header."""
    where = "[policy] from_rewriting_lists"
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: each entry must be a table like "
                              '{address = "list@example.com", author_header = "X-Original-From"}')
        reject_unknown_keys(item, where, _KNOWN["policy.from_rewriting_lists"])
        for key in ("address", "author_header"):
            if not isinstance(item.get(key), str):
                raise ConfigError(f"{where}: {key} is required (a string)")
        header = item["author_header"]
        if not _HEADER_NAME.fullmatch(header) or header.lower() in ("from", "sender"):
            raise ConfigError(f"{where}: author_header {header!r} must name the header the "
                              "list adds for the author (not From or Sender)")
        out.append(RewritingList(address=_address("policy", "from_rewriting_lists",
                                                  item["address"]),
                                 author_header=header.lower()))
    return tuple(out)


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")
