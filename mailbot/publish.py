"""The static HTML site: incidents + the experts directory -> a directory of HTML pages.

Takes incidents (any iterable, read once), the ServiceDirectory, the Config and "now";
hands on the written pages:

    index.html               the board: open (by severity), resolved, the latest closed
    experts.html             every service, its experts, escalation notes, dependencies
    action-items.html        every postmortem's action items: overdue, open, done, quarterly
    metrics.html             the weekly figures and charts leadership reads (metrics.py)
    incidents/INC-n.html     one incident: declaration, impact, experts, timeline, postmortem
    archive/N.html           every closed incident, newest first, ARCHIVE_PAGE_SIZE a page

Pages are self-contained (inline CSS and JS, relative links) so they work from file:// and
any static host. All wording lives in templates/site/; everything that came from mail is
escaped by Jinja's autoescaping.

Incident pages are rendered and written one at a time while the board keeps only a small
row per incident, so a store with 100,000 incidents streams through. A page whose bytes are
unchanged is not rewritten, and a closed incident's page does not depend on "now", so a
republish only rewrites what moved.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from email.utils import parseaddr
from itertools import groupby
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

from jinja2 import (ChoiceLoader, Environment, FileSystemLoader, StrictUndefined,
                    select_autoescape)
from markupsafe import Markup, escape

from mailbot.actions import ItemBoard
from mailbot.config import Config, builtin_templates_dir
from mailbot.durable import sync_filesystem, write_unsynced

from mailbot.formatting import format_duration, format_when
from mailbot.metrics import MetricsBoard
from mailbot.models import Incident
from mailbot.oncall import WEEKS_SHOWN, on_call_at
from mailbot.services import Expert, ServiceDirectory
from mailbot.timing import aware, is_stale, severity_rank

log = logging.getLogger(__name__)

# A site is made to be served: a web server outside mailbot's group must read it. Who can
# reach it is decided by where it is published (--out, [publish] dir).
SITE_FILE_MODE = 0o644
SITE_DIR_MODE = 0o755

BOARD_CLOSED = 25  # closed incidents shown on the board itself; the rest are in archive/
ARCHIVE_PAGE_SIZE = 500
# Every template an incident page is made of (for page_stamp).
_INCIDENT_TEMPLATES = ("site/incident.html", "site/base.html", "site/macros.html",
                       "site/style.css")
_BUILTIN_TEMPLATES = builtin_templates_dir().resolve()
_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%'*+/=^_`{|}~-]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+$")
_URL = re.compile(r"^https?://[^\s<>\"']+$")
_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"']+")
# Entries that say nothing new about the incident itself; runs of them fold on its page.
FOLDED_KINDS = frozenset({"reminder", "rejected", "postmortem-rejected"})


@dataclass(frozen=True, slots=True)
class BoardRow:
    """What the board and the archive need of one incident (kept for every incident)."""

    id: int
    ref: str
    title: str
    status: str
    severity: str | None
    rank: int
    phase: str | None
    commander: str | None
    declared_at: dt.datetime | None
    began_at: dt.datetime | None  # Started-At:, else declared_at: the age counts from it
    updated_at: dt.datetime | None
    resolved_at: dt.datetime | None
    closed_at: dt.datetime | None
    lasted: dt.timedelta | None  # start to resolution, once resolved; None while open
    needs_liaison: bool
    stale: bool
    postmortem_due: bool


@dataclass(frozen=True)
class ServiceExperts:
    """One service's block on an incident page."""

    name: str
    via: str | None
    experts: tuple[Expert, ...]


def publish_site(out_dir: Path, incidents: Iterable[Incident], directory: ServiceDirectory,
                 config: Config, now: dt.datetime) -> list[Path]:
    """Write the whole site under `out_dir`; return every page of it (changed or not)."""
    out_dir = Path(out_dir)
    site = _Site(out_dir, config, directory, now)
    for sub in ("", "incidents", "archive"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(out_dir / sub, SITE_DIR_MODE)

    rows: list[BoardRow] = []
    items = ItemBoard(now.astimezone(config.schedule.tz).date(), site.prefix)
    figures = MetricsBoard(config, now)
    for incident in incidents:
        items.add(incident)
        figures.add(incident)
        name = f"incidents/{incident.ref(site.prefix)}.html"
        stamp = site.page_stamp(incident)
        if stamp is None or not site.keep_if_stamped(name, stamp):
            site.write(name, "site/incident.html", root="../", page_stamp=stamp,
                       **site.incident_context(incident))
        rows.append(site.board_row(incident))

    open_rows = sorted((r for r in rows if r.status == "open"),
                       key=lambda r: (r.rank, -_ts(r.declared_at), -r.id))
    resolved_rows = sorted((r for r in rows if r.status == "resolved"),
                           key=lambda r: (-_ts(r.resolved_at or r.updated_at), -r.id))
    closed_rows = sorted((r for r in rows if r.status not in ("open", "resolved")),
                         key=lambda r: (-_ts(r.closed_at or r.resolved_at), -r.id))
    del rows

    pages = max(1, -(-len(closed_rows) // ARCHIVE_PAGE_SIZE))
    site.write("index.html", "site/index.html", root="", open_rows=open_rows,
               resolved_rows=resolved_rows, closed_rows=closed_rows[:BOARD_CLOSED],
               closed_total=len(closed_rows), archive_pages=pages if closed_rows else 0)
    for page in range(1, pages + 1):
        start = (page - 1) * ARCHIVE_PAGE_SIZE
        site.write(f"archive/{page}.html", "site/archive.html", root="../",
                   rows=closed_rows[start:start + ARCHIVE_PAGE_SIZE], page=page, pages=pages,
                   closed_total=len(closed_rows), first=start + 1)
    _remove_archive_pages_beyond(out_dir / "archive", pages)
    site.write("experts.html", "site/experts.html", root="")
    site.write("action-items.html", "site/action_items.html", root="", board=items)
    site.write("metrics.html", "site/metrics.html", root="", metrics=figures)

    sync_filesystem(out_dir)
    log.info("published %d pages to %s (%d changed)", len(site.pages), out_dir, site.changed)
    return site.pages


def site_environment(config: Config) -> Environment:
    """The Jinja2 environment for the site: config's templates first, then the built-in ones."""
    loaders = [FileSystemLoader(str(config.templates_dir))]
    if Path(config.templates_dir).resolve() != _BUILTIN_TEMPLATES:
        loaders.append(FileSystemLoader(str(_BUILTIN_TEMPLATES)))
    return Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


class _Site:
    """One publish run: the environment, filters bound to the config and "now", the pages."""

    def __init__(self, out_dir: Path, config: Config, directory: ServiceDirectory,
                 now: dt.datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("publish_site needs an aware datetime for now")
        self.out_dir = out_dir
        self.config = config
        self.directory = directory
        self.now = now
        self.tz = config.schedule.tz
        self.prefix = config.list.incident_prefix
        self.pages: list[Path] = []
        self.changed = 0
        self.env = site_environment(config)
        self._templates: dict[str, Any] = {}
        self._site_digest: bytes | None = None
        self.env.filters.update(
            when=self.format_when, ago=self.format_ago, duration=format_duration,
            value=format_value, mailto=mailto_href, sevclass=self.severity_class,
            linkify=linkify,
        )
        self.env.tests.update(address=is_address, url=is_url)
        self.env.globals.update(
            site_name=config.list.name, list_address=config.list.address, prefix=self.prefix,
            severities=config.severities, phases=config.phases, directory=directory,
            published=self.format_when(now), published_iso=now.isoformat(),
            severity_of=config.severity, person_name=self.person_name,
            person_parts=self.person_parts,
            horizon_days=config.postmortem.action_item_horizon_days,
        )
        # On call now and the weeks ahead (the site is static), declare links, review age.
        self.env.globals.update(
            oncall={e.service: e for e in on_call_at(directory, now, weeks=WEEKS_SHOWN)},
            declare_href=self.declare_href, review_age=self.review_age,
            review_after_days=config.oncall.review_after_days, now=now,
        )

    # ------------------------------------------------------------ writing

    def write(self, name: str, template: str, **context: Any) -> Path:
        path = self.out_dir / name
        if template not in self._templates:
            self._templates[template] = self.env.get_template(template)
        data = self._templates[template].render(**context).encode("utf-8")
        try:
            unchanged = path.read_bytes() == data
        except FileNotFoundError:
            unchanged = False
        if not unchanged:
            # Pages are derived data: written plainly (temp file + rename, so a reader
            # never sees half a page) and made durable by one sync at the end. An fsync
            # per page made a 100,000-incident publish take 15-140 s with the disk's mood,
            # and a crash only costs a republish.
            write_unsynced(path, data, SITE_FILE_MODE)
            self.changed += 1
        self.pages.append(path)
        return path

    def keep_if_stamped(self, name: str, stamp: str) -> bool:
        """True (and the page is kept as is) when its existing file carries `stamp`."""
        path = self.out_dir / name
        try:
            with open(path, "rb") as f:
                head = f.read(256)
        except FileNotFoundError:
            return False
        if f"<!-- mailbot-page {stamp} -->".encode() not in head:
            return False
        self.pages.append(path)
        return True

    def page_stamp(self, incident: Incident) -> str | None:
        """For a closed incident, a digest of everything its page is made from; else None.

        Rendering is what a republish spends its time on, and closed incidents are nearly
        all of them and never change: the digest lets an unchanged page be recognised from
        its first line without rendering it again.
        """
        if incident.status != "closed" or _open_items(incident):
            return None  # an open action item turns overdue with the date: rendered anew
        if self._site_digest is None:
            h = hashlib.sha256(Path(__file__).read_bytes())
            assert self.env.loader is not None  # site_environment always gives one
            for name in _INCIDENT_TEMPLATES:
                h.update(self.env.loader.get_source(self.env, name)[0].encode())
            h.update(repr((self.config.list, self.config.severities, self.config.schedule,
                           self.config.postmortem, self.directory.services)).encode())
            self._site_digest = h.digest()
        h = hashlib.sha256(self._site_digest)
        h.update(json.dumps(incident.to_dict(), sort_keys=True, default=str).encode())
        return h.hexdigest()[:40]

    # ------------------------------------------------------------ per incident

    def incident_context(self, incident: Incident) -> dict[str, Any]:
        services = list(incident.services)
        refs = self.directory.experts_for(services)
        # A live incident's page names whoever the rotation has on call as it is written,
        # as the acknowledgements do; a closed one's page must not depend on "now".
        at = self.now if incident.status != "closed" else None
        blocks = [
            ServiceExperts(name, refs_[0].via, tuple(
                dataclasses.replace(r.expert, role=self.directory.role_at(name, r.expert, at))
                for r in refs_))
            for name, group in groupby(refs, key=lambda r: r.service)
            for refs_ in [list(group)]
        ]
        return {
            "incident": incident,
            "ref": incident.ref(self.prefix),
            "severity": self.config.severity(incident.severity) if incident.severity else None,
            "service_experts": blocks,
            "unknown_services": self.directory.unknown(services),
            "stale": self.is_stale(incident),
            "timeline": incident.timeline,
            "timeline_runs": timeline_runs(incident.timeline),
            # A closed incident's page is final: nothing on it may depend on "now", so a
            # republish finds its bytes unchanged and skips it.
            "stamp": incident.status != "closed",
            "today": self.now.astimezone(self.config.schedule.tz).date(),
        }

    def board_row(self, incident: Incident) -> BoardRow:
        return BoardRow(
            id=incident.id,
            ref=incident.ref(self.prefix),
            title=incident.title,
            status=incident.status,
            severity=incident.severity,
            rank=self.severity_rank(incident.severity),
            phase=incident.phase,
            commander=incident.commander,
            declared_at=incident.declared_at,
            began_at=incident.began_at,
            updated_at=incident.updated_at or incident.declared_at,
            resolved_at=incident.resolved_at,
            closed_at=incident.closed_at,
            lasted=(incident.duration(incident.resolved_at)
                    if incident.status != "open" and incident.resolved_at else None),
            needs_liaison=incident.needs_liaison and incident.status != "closed",
            stale=self.is_stale(incident),
            postmortem_due=incident.status == "resolved" and incident.postmortem is None,
        )

    def is_stale(self, incident: Incident) -> bool:
        return is_stale(self.config, incident, self.now)

    def severity_rank(self, name: str | None) -> int:
        return severity_rank(self.config, name)

    def severity_class(self, name: str | None) -> str:
        sev = self.config.severity(name) if name else None
        return f"sev sev-{sev.rank}" if sev is not None and sev.rank <= 4 else "sev sev-x"

    def declare_href(self, service: str = "") -> str:
        """A mailto: link that opens a declaration to the list, the fields to fill in."""
        body = self.env.get_template("site/declare.txt").render(service=service)
        subject = f"[DECLARE] {service}: " if service else "[DECLARE] "
        return declare_mailto(self.config.list.address, subject, body)

    def review_age(self, service: Any) -> int | None:
        """Days since `service`'s entry was reviewed when that is past [oncall]
        review_after_days, else None."""
        limit = self.config.oncall.review_after_days
        if limit <= 0 or service.reviewed is None:
            return None  # an entry without a date is not flagged: unknown is not old
        days = (self.now.astimezone(self.tz).date() - service.reviewed).days
        return days if days > limit else None

    def person_name(self, value: str | None) -> str:
        """The directory's name for an address, or "" when it knows none."""
        if not value:
            return ""
        expert = self.directory.expert_by_address(value)
        return expert.name if expert and expert.name != expert.address else ""

    def person_parts(self, value: str) -> tuple[str, str]:
        """(the name to show, the address to link or ""): "Ana <ana@x>" -> ("Ana", "ana@x"),
        a bare address -> the directory's name for it, else the address; a name -> itself."""
        name, address = parseaddr(value)
        if not is_address(address):
            return value, ""
        return self.person_name(address) or name.strip() or address, address

    # ------------------------------------------------------------ time

    def format_when(self, when: dt.datetime | None) -> str:
        return format_when(aware(when), self.tz) if when is not None else ""

    def format_ago(self, when: dt.datetime | None) -> str:
        if when is None:
            return ""
        return format_duration(self.now - aware(when))


def _open_items(incident: Incident) -> bool:
    pm = incident.postmortem
    return pm is not None and any(a.done_at is None for a in pm.action_items)


def format_value(value: Any) -> str:
    """A timeline change's old or new value as people read it (escaped by the template)."""
    if value is None or value == "" or value == [] or value == {}:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return format_when(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def timeline_runs(timeline: Iterable[Any]) -> list[tuple[bool, list[Any]]]:
    """The timeline as runs: (True, [reminders and rejections in a row]) to fold, and
    (False, [one entry]) for every other entry, in order."""
    runs: list[tuple[bool, list[Any]]] = []
    for folded, group in groupby(timeline, key=lambda e: e.kind in FOLDED_KINDS):
        if folded:
            runs.append((True, list(group)))
        else:
            runs.extend((False, [e]) for e in group)
    return runs


def linkify(text: str) -> Markup:
    """Free text, escaped, with its http(s) URLs made links (escalation notes name pagers
    and chat rooms); a sentence's closing punctuation stays out of the link."""
    parts: list[str] = []
    pos = 0
    for match in _URL_IN_TEXT.finditer(text):
        url = match.group(0).rstrip(".,;:!?)]")
        parts.append(escape(text[pos:match.start()]))
        parts.append(Markup('<a href="{0}" rel="noopener noreferrer">{0}</a>').format(url))
        pos = match.start() + len(url)
    parts.append(escape(text[pos:]))
    return Markup("").join(parts)


def is_address(value: Any) -> bool:
    return isinstance(value, str) and bool(_ADDRESS.match(value.strip()))


def is_url(value: Any) -> bool:
    """http(s) only: anything else (javascript:, data:) must never become a link."""
    return isinstance(value, str) and bool(_URL.match(value.strip()))


def mailto_href(address: str) -> str:
    return "mailto:" + quote(address.strip(), safe="@.+-_!$'*=^`{|}~")


def declare_mailto(address: str, subject: str, body: str) -> str:
    """RFC 6068: every reserved character percent-encoded, line breaks as %0D%0A."""
    body = body.replace("\r\n", "\n").replace("\n", "\r\n")
    return (mailto_href(address) + "?subject=" + quote(subject, safe="")
            + "&body=" + quote(body, safe=""))


def _ts(when: dt.datetime | None) -> float:
    return aware(when).timestamp() if when else 0.0


def _remove_archive_pages_beyond(archive: Path, pages: int) -> None:
    for path in archive.glob("*.html"):
        if path.stem.isdigit() and int(path.stem) > pages:
            path.unlink()


def site_template_environment(config: Config) -> Environment:
    """The site's environment with its filters bound, for checking templates compile."""
    return _Site(Path("."), config, ServiceDirectory(), dt.datetime.now(dt.timezone.utc)).env
