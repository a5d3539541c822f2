"""The config loader, table-driven: each row is a TOML snippet and what loading it gives
(a value, or the one-line error naming the key). No daemon, no subprocess: milliseconds.

And config/mailbot.toml against the dataclasses: every key documented, with its default."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import tomllib
from pathlib import Path

import pytest

from mailbot import config as config_module
from mailbot.config import (DEFAULT_PHASES, DEFAULT_SEVERITIES, Config, ConfigError,
                            load_config)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "config" / "mailbot.toml"


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "mailbot.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


# ------------------------------------------------------------ values

VALUES = [
    # (TOML, attribute path, expected value)
    ("", "smtp.port", 8025),
    ("", "smtp.max_message_size", 10 * 1024 * 1024),
    ("", "outbound.smtp_port", 25),
    ("", "imap", None),
    ("", "log_level", "INFO"),
    ("", "phases", DEFAULT_PHASES),
    ("", "severities", DEFAULT_SEVERITIES),
    ("", "schedule.quiet_hours", (dt.time(22, 0), dt.time(7, 0))),
    ("", "postmortem.weekly_summary_day", 0),
    ("", "publish.dir", None),
    ('[list]\nincident_prefix = "ops"', "list.incident_prefix", "OPS"),
    ('[list]\naddress = "Incidents@Example.COM"', "list.address", "incidents@example.com"),
    ("[ingress.smtp]\nport = 0", "smtp.port", 0),
    ('[ingress.smtp]\nprotocol = "lmtp"', "smtp.protocol", "lmtp"),
    ("[ingress.smtp]\nmax_message_size = 1024", "smtp.max_message_size", 1024),
    ('[ingress.imap]\nhost = "127.0.0.1"\ntls = "none"', "imap.port", 993),
    ('[ingress.imap]\nhost = "imap.example.com"', "imap.idle_timeout", 1500),
    ('[ingress.imap]\nhost = "h.example"\nstart_at = "2026-01-02"', "imap.start_at",
     "2026-01-02"),
    ('[outbound]\nhelo_name = "[192.0.2.1]"', "outbound.helo_name", "[192.0.2.1]"),
    ('[policy]\nallowed_senders = ["@Ops.Example.com", "Bob@x.org"]',
     "policy.allowed_senders", ("ops.example.com", "bob@x.org")),
    ('[policy]\ntrusted_authserv_ids = ["MX.Example.com"]', "policy.trusted_authserv_ids",
     ("mx.example.com",)),
    ('[policy]\nfrom_rewriting_lists = [{address = "L@example.com", '
     'author_header = "X-Original-From"}]', "policy.from_rewriting_lists",
     (config_module.RewritingList("l@example.com", "x-original-from"),)),
    ('[schedule]\ndigest_time = "07:30"', "schedule.digest_time", dt.time(7, 30)),
    ("[schedule]\ndigest_time = 07:30:00", "schedule.digest_time", dt.time(7, 30)),
    ('[schedule]\nquiet_hours = ""', "schedule.quiet_hours", None),
    ('[schedule]\nquiet_hours = "23:00 - 06:00"', "schedule.quiet_hours",
     (dt.time(23, 0), dt.time(6, 0))),
    ('[schedule]\nquiet_severities = ["sev1"]', "schedule.quiet_severities", ("SEV1",)),
    ('[[severity]]\nname = "p1"\n[[severity]]\nname = "P2"\nstale_after_minutes = 5\n',
     "severities", (config_module.Severity("P1", "", 60, 1),
                    config_module.Severity("P2", "", 5, 2))),
    # A custom list keeps the default quiet_severities, even naming levels it lacks.
    ('[[severity]]\nname = "P1"\n', "schedule.quiet_severities", ("SEV3", "SEV4")),
    ('phases = ["Triage", "resolved"]', "phases", ("triage", "resolved")),
    ('[postmortem]\nleadership = ["CTO@example.com"]', "postmortem.leadership",
     ("cto@example.com",)),
    ('[postmortem]\nleadership_severities = ["sev1"]', "postmortem.leadership_severities",
     ("SEV1",)),
    ('[postmortem]\nweekly_summary_day = "Fri"', "postmortem.weekly_summary_day", 4),
    ('[postmortem]\nweekly_summary_day = ""', "postmortem.weekly_summary_day", None),
    ('[postmortem]\nweekly_summary_time = "16:45"', "postmortem.weekly_summary_time",
     dt.time(16, 45)),
    ('[oncall]\nescalate_severities = ["sev2"]', "oncall.escalate_severities", ("SEV2",)),
    ("[oncall]\nescalate_after_minutes = 0", "oncall.escalate_after_minutes", 0),
    ('[publish]\nurl = " https://status.example.com/ "', "publish.url",
     "https://status.example.com/"),
    ('[logging]\nlevel = "debug"', "log_level", "DEBUG"),
]


@pytest.mark.parametrize("text, attribute, expected", VALUES,
                         ids=[f"{a}={e!r}"[:60] for _, a, e in VALUES])
def test_a_value_loads_as(tmp_path, text, attribute, expected):
    value = load(tmp_path, text)
    for part in attribute.split("."):
        value = getattr(value, part)
    assert value == expected


@pytest.mark.parametrize("text, attribute, relative", [
    ("", "storage.dir", "var"),
    ('[storage]\ndir = "data"', "storage.dir", "data"),
    ('[publish]\ndir = "site"', "publish.dir", "site"),
    ("", "services_file", "services.toml"),
    ('[services]\nfile = "experts.toml"', "services_file", "experts.toml"),
])
def test_relative_paths_are_beside_the_file(tmp_path, text, attribute, relative):
    value = load(tmp_path, text)
    for part in attribute.split("."):
        value = getattr(value, part)
    assert value == tmp_path / relative


def test_an_absolute_path_stays(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    assert load(tmp_path, f'[storage]\ndir = "{elsewhere}"').storage.dir == elsewhere


# ------------------------------------------------------------ errors

ERRORS = [
    # (TOML, the error must contain)
    ("[bogus]\nx = 1", "unknown key 'bogus' in top level"),
    ("[list]\nadress = \"a@b.example\"", "unknown key 'adress' in [list]"),
    ("[ingress.smtp]\nportt = 1", "unknown key 'portt' in [ingress.smtp]"),
    ("[ingress.pop3]\nhost = \"x\"", "unknown key 'pop3' in [ingress]"),
    ('[list]\naddress = "nobody"', "[list] address: 'nobody' is not an email address"),
    ('[list]\naddress = "mailbot@example.com"', "[list] address and bot_address must differ"),
    ('[list]\nincident_prefix = "IN-C"', "[list] incident_prefix: 'IN-C' must be letters"),
    ("[list]\nname = 3", "[list] name must be a string, not 3"),
    ('[ingress.smtp]\nport = "25"', "[ingress.smtp] port must be a whole number, not '25'"),
    ("[ingress.smtp]\nport = true", "[ingress.smtp] port must be a whole number, not True"),
    ("[ingress.smtp]\nport = 70000", "[ingress.smtp] port: 70000 is not a port number"),
    ("[ingress.smtp]\nenabled = 1", "[ingress.smtp] enabled must be true or false, not 1"),
    ('[ingress.smtp]\nprotocol = "esmtp"',
     "[ingress.smtp] protocol: 'esmtp' is not one of smtp, lmtp"),
    ("[ingress.smtp]\nmax_message_size = 100", "[ingress.smtp] max_message_size must be "
                                               "at least 1024"),
    ("[ingress.smtp]\nmax_connections = 0",
     "[ingress.smtp] max_connections must be at least 1, not 0"),
    ("[ingress.imap]\nport = 993", "[ingress.imap] host is required"),
    ('[ingress.imap]\nhost = "imap.example.com"\ntls = "none"',
     '[ingress.imap] tls = "none" is only allowed for a loopback host'),
    ('[ingress.imap]\nhost = "127.0.0.1"\ntls = "ssl"',
     "[ingress.imap] tls: 'ssl' is not one of implicit, starttls, none"),
    ('[ingress.imap]\nhost = "h.example"\nprocessed_action = "delete"',
     "[ingress.imap] processed_action: 'delete' is not one of flag, move"),
    ('[ingress.imap]\nhost = "h.example"\nstart_at = "yesterday"',
     "[ingress.imap] start_at: 'yesterday' is not new, all or a YYYY-MM-DD date"),
    ('[ingress.imap]\nhost = "h.example"\nidle_timeout = 1800',
     "[ingress.imap] idle_timeout must be under 29 minutes"),
    ('[ingress.imap]\nhost = "h.example"\npoll_interval = 0',
     "[ingress.imap] poll_interval must be at least 1, not 0"),
    ('[ingress.imap]\nhost = "h.example"\nca_file = "/nonexistent/ca.pem"',
     "[ingress.imap] ca_file /nonexistent/ca.pem: no such file"),
    ('[outbound]\ntls = "ssl"', "[outbound] tls: 'ssl' is not one of none, starttls, implicit"),
    ("[outbound]\nsmtp_port = -1", "[outbound] smtp_port: -1 is not a port number"),
    ('[outbound]\nhelo_name = "a b"', "[outbound] helo_name: 'a b' is not a host name"),
    ("[outbound]\nretry_initial_seconds = -5",
     "[outbound] retry_initial_seconds must be at least 1, not -5"),
    ("[outbound]\ntimeout = 0", "[outbound] timeout must be at least 1, not 0"),
    ('[policy]\nallowed_senders = ["not a domain"]',
     "[policy] allowed_senders: 'not a domain' is neither an address nor a domain"),
    ('[policy]\nallowed_senders = "example.com"',
     "[policy] allowed_senders must be a list, not 'example.com'"),
    ("[policy]\nrequire_dkim = true", "[policy] require_dkim needs trusted_authserv_ids"),
    ("[policy]\nmax_mail_per_address_per_hour = 0",
     "[policy] max_mail_per_address_per_hour must be at least 1, not 0"),
    ("[policy]\nfrom_rewriting_lists = [3]",
     "[policy] from_rewriting_lists: each entry must be a table"),
    ('[policy]\nfrom_rewriting_lists = [{address = "l@example.com"}]',
     "[policy] from_rewriting_lists: author_header is required"),
    ('[policy]\nfrom_rewriting_lists = [{address = "l@example.com", author_header = "From"}]',
     "not From or Sender"),
    ('[policy]\nfrom_rewriting_lists = [{address = "l@example.com", '
     'author_header = "X-A", y = 1}]', "unknown key 'y' in [policy] from_rewriting_lists"),
    ("severity = []", "[[severity]] must be a non-empty array of tables"),
    ('[[severity]]\nname = "critical"', "[[severity]] name 'critical' must be letters then "
                                        "a number"),
    ('[[severity]]\nname = "P1"\n[[severity]]\nname = "p1"', "[[severity]] names must be "
                                                              "unique"),
    ('[[severity]]\nname = "P1"\nstale_after_minutes = 0',
     "[severity] stale_after_minutes must be at least 1, not 0"),
    ('[[severity]]\nname = "P1"\nrank = 2', "unknown key 'rank' in [severity]"),
    ('phases = ["investigating"]', 'phases must include "resolved"'),
    ('phases = "resolved"', "phases must be a list of names"),
    ('[schedule]\ntimezone = "Mars/Olympus"',
     "[schedule] timezone: 'Mars/Olympus' is not an IANA time zone"),
    ('[schedule]\ndigest_time = "9am"', "[schedule] digest_time: '9am' is not a time like"),
    ('[schedule]\nquiet_hours = "late"',
     "[schedule] quiet_hours: 'late' is not a range like \"22:00-07:00\""),
    ('[schedule]\nquiet_hours = "07:00-07:00"', "[schedule] quiet_hours: '07:00-07:00' is "
                                                "empty"),
    ('[schedule]\nquiet_severities = ["SEV9"]',
     "[schedule] quiet_severities: 'SEV9' is not a configured severity"),
    ("[schedule]\nquiet_severities = [3]", "[schedule] quiet_severities must be a list of "
                                           "names"),
    ("[schedule]\nescalate_after_reminders = -1",
     "[schedule] escalate_after_reminders must be at least 0, not -1"),
    ("[postmortem]\naction_item_horizon_days = -3",
     "[postmortem] action_item_horizon_days must be at least 0, not -3"),
    ('[postmortem]\nleadership = ["boss"]',
     "[postmortem] leadership: 'boss' is not an email address"),
    ('[postmortem]\nweekly_summary_day = "someday"',
     "[postmortem] weekly_summary_day must be a day of the week or \"\", not 'someday'"),
    ('[postmortem]\nweekly_summary_time = "noon"',
     "[postmortem] weekly_summary_time"),
    ("[oncall]\nreview_after_days = -1", "[oncall] review_after_days must be at least 0"),
    ("[oncall]\ncustomer_statement = \"yes\"",
     "[oncall] customer_statement must be true or false, not 'yes'"),
    ('[publish]\nurl = "status.example.com"',
     "publish.url: 'status.example.com' is not an http(s):// or file:// address"),
    ('[logging]\nlevel = "loud"', "[logging] level: 'LOUD' is not one of DEBUG, INFO, "
                                  "WARNING, ERROR"),
    ('[templates]\ndir = "nowhere"', "[templates] dir "),
]


@pytest.mark.parametrize("text, message", ERRORS, ids=[m[:50] for _, m in ERRORS])
def test_a_bad_value_is_one_line_naming_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    error = str(info.value)
    assert message in error
    assert "\n" not in error
    assert error.startswith(f"{tmp_path / 'mailbot.toml'}: ")


def test_a_missing_file_says_how_to_start(tmp_path):
    with pytest.raises(ConfigError, match="no such file .*init-config"):
        load_config(tmp_path / "absent.toml")


def test_invalid_toml_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="invalid TOML"):
        load(tmp_path, "[list\n")


# ------------------------------------------------------------ the shipped file

def _documented_keys() -> dict[str, dict[str, object]]:
    """Each [section] of the shipped file -> its keys and values, commented-out ones too
    (a `# key = value` line in a commented-out section documents that key)."""
    sections: dict[str, dict[str, object]] = {"": {}}
    current = ""
    for line in SHIPPED.read_text(encoding="utf-8").splitlines():
        bare = re.sub(r"^#\s?", "", line.strip())
        header = re.fullmatch(r"\[\[?([a-z_.]+)\]\]?\s*(#.*)?", bare)
        if header:
            current = header.group(1)
            sections.setdefault(current, {})
            continue
        pair = re.match(r"([a-z_]+) = (.*)$", bare)
        if pair and not line.strip().startswith("# ") or (pair and current in
                                                           ("ingress.imap", "templates")):
            try:
                value = tomllib.loads(f"v = {pair.group(2)}")["v"]
            except tomllib.TOMLDecodeError:
                continue  # prose in a comment, not a key
            sections[current].setdefault(pair.group(1), value)
    return sections


def test_every_key_is_documented_in_the_shipped_file():
    documented = _documented_keys()
    for section, cls in config_module.SECTIONS.items():
        keys = set(config_module.keys_of(cls))
        assert keys <= set(documented.get(section, {})), \
            f"[{section}] undocumented in config/mailbot.toml: " \
            f"{sorted(keys - set(documented.get(section, {})))}"
        assert set(documented.get(section, {})) <= keys, f"[{section}] documents unknown keys"
    assert set(config_module.keys_of(config_module.Severity)) <= set(documented["severity"])
    assert "phases" in documented[""]


def test_the_shipped_file_shows_each_default(tmp_path):
    """Every key the file sets (not a commented-out example) is set to its default: the
    file and the dataclasses say the same thing."""
    shipped = load_config(SHIPPED)
    # The same file with every set key removed: what the dataclasses give.
    bare = tmp_path / "mailbot.toml"
    bare.write_text("")
    defaults = load_config(bare)
    for name in ("list", "smtp", "outbound", "policy", "schedule", "postmortem", "publish",
                 "oncall", "imap", "severities", "phases", "log_level", "templates_dir"):
        assert getattr(shipped, name) == getattr(defaults, name), name
    # Paths are beside each file: compare them relative to it.
    assert shipped.storage.dir.relative_to(SHIPPED.parent) == \
        defaults.storage.dir.relative_to(tmp_path)
    assert shipped.services_file.relative_to(SHIPPED.parent) == \
        defaults.services_file.relative_to(tmp_path)


def test_every_documented_value_parses_to_its_default():
    """Commented-out keys too: their shown value is the default, except where the file
    shows an example (a key without a default, or an account that is yours to set)."""
    examples = {("ingress.imap", "host"), ("ingress.imap", "username"),
                ("ingress.imap", "password_file"), ("templates", "dir")}
    for section, values in _documented_keys().items():
        cls = config_module.SECTIONS.get(section)
        if cls is None:
            continue
        for key, value in values.items():
            if (section, key) in examples:
                continue
            f = next(f for f in dataclasses.fields(cls) if f.name == key)
            loaded = config_module.read_key(cls, section, key, value, base=SHIPPED)
            assert loaded == config_module.default_of(f, base=SHIPPED), \
                (section, key)
