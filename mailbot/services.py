"""The experts directory: `config/services.toml` -> a validated, frozen ServiceDirectory.

Takes the services file named by `Config.services_file`; hands on a ServiceDirectory that
acknowledgements, digests and the static site ask "who knows about these services?".
Like the main configuration it is validated once, and every problem is one ConfigError
line naming the service and key.

    [services.api]
    description = "Public REST API"
    depends_on = ["db", "auth"]
    [[services.api.experts]]
    name = "Alice Ng"
    address = "alice@example.com"
    role = "on-call"
"""

from __future__ import annotations

import datetime as dt
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailbot.config import reject_unknown_keys
from mailbot.configfile import ConfigError, read_toml
from mailbot.rotation import WEEKDAYS, Override, Rotation, Shift
from mailbot.scheduler import local_instant

_SERVICE_KEYS = {"description", "experts", "escalation", "depends_on", "aliases", "runbook",
                 "rotation", "reviewed"}
_EXPERT_KEYS = {"name", "address", "role", "pager"}
_ROTATION_KEYS = {"members", "start", "handover_day", "handover_time", "timezone",
                  "period_weeks", "overrides"}
_OVERRIDE_KEYS = {"person", "from", "until"}
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# Deliberately narrower than RFC 5322: these addresses end up in mailto: links and in
# headers, where quoted local parts, '?' or '&' only cause trouble.
_ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%'*+/=^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
_URL = re.compile(r"^https?://[^\s<>\"']+$")


@dataclass(frozen=True)
class Expert:
    name: str
    address: str  # lower-case addr-spec
    role: str  # lower case: on-call, owner, expert, ... (an open set)
    pager: str = ""  # where a page goes (an email-to-SMS gateway, a paging service), or ""

    @property
    def page_address(self) -> str:
        """Where a page to this person is mailed: the pager, else the normal address."""
        return self.pager or self.address


@dataclass(frozen=True)
class Service:
    name: str  # canonical, lower case
    description: str
    experts: tuple[Expert, ...]
    escalation: str = ""
    depends_on: tuple[str, ...] = ()  # canonical names of the services this one calls
    aliases: tuple[str, ...] = ()  # other names people write in `Services:`
    runbook: str = ""  # an http(s) URL, or ""
    rotation: Rotation | None = None
    reviewed: dt.date | None = None  # when the entry was last checked to be true

    @property
    def owners(self) -> tuple[Expert, ...]:
        return tuple(e for e in self.experts if e.role == "owner")


class OnCall(NamedTuple):
    """Who is on call for a service now and who takes over next, at `now.end`."""

    service: str
    now: Shift
    next: Shift


class ExpertRef(NamedTuple):
    """One expert to contact for an incident, and why."""

    service: str  # the service this expert knows
    expert: Expert
    via: str | None  # None: the service was named; else the named-or-reached service using it


class Duty(NamedTuple):
    """What one person is for one service: `role` of `service`, reached `via` a service."""

    service: str
    role: str
    via: str | None


class Contact(NamedTuple):
    """One person to contact for an incident, once, with every duty they have in it."""

    name: str
    address: str
    duties: tuple[Duty, ...]


@dataclass(frozen=True)
class Contacts:
    """The people to contact for an incident, each once (nearest services first), and the
    runbooks of those services. Iterates over the people, so a list of them reads alike."""

    people: tuple[Contact, ...] = ()
    runbooks: tuple[tuple[str, str], ...] = ()  # (service, url)

    def __iter__(self) -> Iterator[Contact]:
        return iter(self.people)

    def __len__(self) -> int:
        return len(self.people)

    def __bool__(self) -> bool:
        return bool(self.people or self.runbooks)

    def first_to_call(self) -> tuple[tuple[tuple[str, ...], Contact], ...]:
        """For a one-line mention: the on-call people of the services named (not those
        reached through dependencies), each once with those services; when nobody is on
        call for them, every expert of them."""
        direct = [(d, c) for c in self.people for d in c.duties if d.via is None]
        chosen = [(d, c) for d, c in direct if d.role == "on-call"] or direct
        grouped: dict[str, tuple[list[str], Contact]] = {}
        for duty, contact in chosen:
            grouped.setdefault(contact.address, ([], contact))[0].append(duty.service)
        return tuple((tuple(services), contact) for services, contact in grouped.values())


class ServiceDirectory:
    """Every service with its experts, in file order; names match case-insensitively."""

    def __init__(self, services: Iterable[Service] = (), path: Path | None = None) -> None:
        self.path = path
        self._services: dict[str, Service] = {}
        self._names: dict[str, str] = {}  # name or alias -> canonical name
        self._by_address: dict[str, Expert] = {}
        for service in services:
            self._services[service.name] = service
            self._names[service.name] = service.name
            for alias in service.aliases:
                self._names[alias] = service.name
            for expert in service.experts:
                known = self._by_address.get(expert.address)
                if known is None or (expert.pager and not known.pager):
                    self._by_address[expert.address] = expert

    def __len__(self) -> int:
        return len(self._services)

    def __iter__(self) -> Iterator[Service]:
        return iter(self._services.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.resolve(name) is not None

    @property
    def services(self) -> tuple[Service, ...]:
        return tuple(self._services.values())

    def resolve(self, name: str) -> str | None:
        """The canonical name for `name` (a service name or alias, any case), or None."""
        return self._names.get(name.strip().lower())

    def get(self, name: str) -> Service | None:
        canonical = self.resolve(name)
        return self._services[canonical] if canonical else None

    def unknown(self, names: Iterable[str]) -> list[str]:
        """The names (as given, each once) that are not services or aliases."""
        out: list[str] = []
        for name in names:
            if self.resolve(name) is None and name not in out:
                out.append(name)
        return out

    def experts_for(self, names: Iterable[str]) -> list[ExpertRef]:
        """Experts of the named services, then of the services they depend on, transitively.

        Breadth-first, so nearer dependencies come first; each service appears once, with
        `via` None when it was named and otherwise the service that first reached it.
        Unknown names are skipped (ask `unknown()`); cycles end at the first repeat.
        """
        seen: dict[str, str | None] = {}
        queue: deque[str] = deque()
        for name in names:
            canonical = self.resolve(name)
            if canonical is not None and canonical not in seen:
                seen[canonical] = None
                queue.append(canonical)
        order: list[str] = []
        while queue:
            current = queue.popleft()
            order.append(current)
            for dep in self._services[current].depends_on:
                if dep not in seen:
                    seen[dep] = current
                    queue.append(dep)
        return [
            ExpertRef(name, expert, seen[name])
            for name in order
            for expert in self._services[name].experts
        ]

    def contacts_for(self, names: Iterable[str], at: dt.datetime | None = None) -> Contacts:
        """The experts of `experts_for`, each person once with all their duties, and the
        runbooks of the same services: a mail lists a person on call for two services
        once, not twice. With `at`, a service with a rotation has its member on call at
        `at` as "on-call" and its other members as "rotation"."""
        refs = self.experts_for(names)
        people: dict[str, tuple[Expert, list[Duty]]] = {}
        runbooks: dict[str, str] = {}
        for ref in refs:
            entry = people.setdefault(ref.expert.address, (ref.expert, []))
            entry[1].append(Duty(ref.service, self.role_at(ref.service, ref.expert, at),
                                 ref.via))
            runbook = self._services[ref.service].runbook
            if runbook:
                runbooks.setdefault(ref.service, runbook)
        return Contacts(
            people=tuple(Contact(e.name, e.address, tuple(d)) for e, d in people.values()),
            runbooks=tuple(runbooks.items()))

    def role_at(self, service: str, expert: Expert, at: dt.datetime | None) -> str:
        """`expert`'s role in `service` at `at`: a rotation decides who is "on-call"."""
        rotation = self._services[service].rotation
        if at is None or rotation is None:
            return expert.role
        if rotation.person_at(at) == expert.address:
            return "on-call"
        if expert.address in rotation.members and expert.role == "on-call":
            return "rotation"
        return expert.role

    def on_call(self, name: str, at: dt.datetime) -> OnCall | None:
        """Who is on call for service `name` at `at` and who is next (rotation only)."""
        service = self.get(name)
        if service is None or service.rotation is None:
            return None
        current = service.rotation.shift_at(at)
        return OnCall(service.name, current, service.rotation.shift_at(current.end))

    def on_call_people(self, name: str, at: dt.datetime) -> tuple[Expert, ...]:
        """The people to page first for service `name` at `at`: its rotation's person on
        call, else its experts with role "on-call"."""
        service = self.get(name)
        if service is None:
            return ()
        if service.rotation is not None:
            expert = self.expert_by_address(service.rotation.person_at(at))
            return (expert,) if expert else ()
        return tuple(e for e in service.experts if e.role == "on-call")

    def addresses(self) -> tuple[str, ...]:
        """Every address the file names, pagers included: mailbot may write to them."""
        out: dict[str, None] = {}
        for service in self._services.values():
            for expert in service.experts:
                out[expert.address] = None
                if expert.pager:
                    out[expert.pager] = None
        return tuple(out)

    def dependents_of(self, name: str) -> tuple[str, ...]:
        """The services that call `name` directly, in file order."""
        canonical = self.resolve(name)
        return tuple(s.name for s in self._services.values() if canonical in s.depends_on)

    def expert_by_address(self, address: str) -> Expert | None:
        """The first expert entry with this address (any service), for showing names;
        its pager is the person's pager wherever it was written."""
        return self._by_address.get(address.strip().lower())


def load_services(path: Path | str) -> ServiceDirectory:
    """Read and validate a services file; a missing file is an empty directory."""
    path = Path(path)
    raw = read_toml(path)
    if raw is None:
        return ServiceDirectory(path=path)
    try:
        return ServiceDirectory(_build(raw), path=path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _build(raw: Mapping[str, Any]) -> list[Service]:
    for key in raw:
        if key != "services":
            raise ConfigError(f"unknown top-level key {key!r} (services go in [services.NAME])")
    table = raw.get("services", {})
    if not isinstance(table, dict):
        raise ConfigError("services must be tables: [services.NAME]")

    # First pass: names and aliases, so depends_on can be checked against all of them.
    names: dict[str, str] = {}  # name or alias -> canonical
    for key, body in table.items():
        where = f"[services.{key}]"
        name = key.lower()
        if not _NAME.match(name):
            raise ConfigError(
                f"{where}: service names are letters, digits, '.', '_' or '-' (at most 64)"
            )
        if not isinstance(body, dict):
            raise ConfigError(f"{where} must be a table, not {body!r}")
        if name in names:
            raise ConfigError(f"{where}: {name!r} is already a service name or alias")
        names[name] = name
        for alias in _strings(body, where, "aliases"):
            alias = alias.lower()
            if not _NAME.match(alias):
                raise ConfigError(f"{where} aliases: {alias!r} is not a valid service name")
            if alias in names and names[alias] != name:
                raise ConfigError(f"{where} aliases: {alias!r} is already used by "
                                  f"[services.{names[alias]}]")
            names[alias] = name

    services = []
    for key, body in table.items():
        where = f"[services.{key}]"
        reject_unknown_keys(body, where, _SERVICE_KEYS)
        description = _string(body, where, "description").strip()
        if not description:
            raise ConfigError(f"{where} description is required")
        deps: list[str] = []
        for dep in _strings(body, where, "depends_on"):
            canonical = names.get(dep.lower())
            if canonical is None:
                raise ConfigError(f"{where} depends_on: {dep!r} is not a service in this file")
            if canonical not in deps:
                deps.append(canonical)
        runbook = _string(body, where, "runbook").strip()
        if runbook and not _URL.match(runbook):
            raise ConfigError(f"{where} runbook: {runbook!r} is not an http(s) URL")
        services.append(Service(
            name=key.lower(),
            description=description,
            experts=_experts(body, where),
            escalation=_string(body, where, "escalation").strip(),
            depends_on=tuple(deps),
            aliases=tuple(a.lower() for a in _strings(body, where, "aliases")),
            runbook=runbook,
            rotation=_rotation(body, where),
            reviewed=_reviewed(body, where),
        ))
    _check_pagers(services)
    return services


def _reviewed(body: Mapping[str, Any], where: str) -> dt.date | None:
    value = body.get("reviewed")
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value.strip())
        except ValueError:
            raise ConfigError(f"{where} reviewed: {value!r} is not a date (YYYY-MM-DD)") from None
    if isinstance(value, dt.datetime):
        value = value.date()
    if not isinstance(value, dt.date):
        raise ConfigError(f"{where} reviewed must be a date (YYYY-MM-DD), not {value!r}")
    return value


def _check_pagers(services: list[Service]) -> None:
    """One person has one pager, wherever in the file it is written."""
    pagers: dict[str, tuple[str, str]] = {}
    for service in services:
        for expert in service.experts:
            if not expert.pager:
                continue
            known = pagers.setdefault(expert.address, (expert.pager, service.name))
            if known[0] != expert.pager:
                raise ConfigError(
                    f"[services.{service.name}] expert {expert.address}: pager "
                    f"{expert.pager!r} differs from {known[0]!r} in [services.{known[1]}]")


def _rotation(body: Mapping[str, Any], where: str) -> Rotation | None:
    raw = body.get("rotation")
    if raw is None:
        return None
    at = f"{where} rotation"
    if not isinstance(raw, dict):
        raise ConfigError(f"{at} must be a table ([services.NAME.rotation])")
    reject_unknown_keys(raw, at, _ROTATION_KEYS)
    experts = {e.address for e in _experts(body, where)}
    members = [m.strip().lower() for m in _strings(raw, at, "members")]
    if not members:
        raise ConfigError(f"{at} members: list at least one address")
    for member in members:
        if member not in experts:
            raise ConfigError(f"{at} members: {member!r} is not an expert of this service "
                              "(add a [[services.NAME.experts]] entry for them)")
    if len(set(members)) != len(members):
        raise ConfigError(f"{at} members: an address is listed twice")
    zone = _string(raw, at, "timezone").strip()
    if not zone:
        raise ConfigError(f"{at} timezone is required (e.g. \"Europe/Berlin\")")
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{at} timezone: {zone!r} is not a known time zone") from None
    day_name = _string(raw, at, "handover_day").strip().lower() or "monday"
    if day_name not in WEEKDAYS:
        raise ConfigError(f"{at} handover_day: {day_name!r} is not a weekday "
                          "(monday ... sunday)")
    handover_time = _clock(_string(raw, at, "handover_time").strip() or "09:00",
                           f"{at} handover_time")
    period = raw.get("period_weeks", 1)
    if not isinstance(period, int) or isinstance(period, bool) or period < 1:
        raise ConfigError(f"{at} period_weeks must be a whole number of weeks, at least 1")
    start = raw.get("start")
    if isinstance(start, str):
        try:
            start = dt.date.fromisoformat(start.strip())
        except ValueError:
            start = None
    if not isinstance(start, dt.date) or isinstance(start, dt.datetime):
        raise ConfigError(f"{at} start: a date (YYYY-MM-DD) on which the first member "
                          "takes over is required")
    if start.weekday() != WEEKDAYS.index(day_name):
        raise ConfigError(f"{at} start: {start.isoformat()} is a "
                          f"{WEEKDAYS[start.weekday()]}, not the handover_day ({day_name})")
    overrides = []
    for n, item in enumerate(_tables(raw.get("overrides", []), f"{at} overrides",
                                     "[[services.NAME.rotation.overrides]]"), start=1):
        o_at = f"{at} override {n}"
        reject_unknown_keys(item, o_at, _OVERRIDE_KEYS)
        person = _string(item, o_at, "person").strip().lower()
        if person not in experts:
            raise ConfigError(f"{o_at} person: {person!r} is not an expert of this service")
        begin = _local(item.get("from"), tz, f"{o_at} from")
        end = _local(item.get("until"), tz, f"{o_at} until")
        if end <= begin:
            raise ConfigError(f"{o_at}: until must be after from")
        overrides.append(Override(begin, end, person))
    return Rotation(members=tuple(members), start=start, handover_day=start.weekday(),
                    handover_time=handover_time, tz=tz, period_weeks=period,
                    overrides=tuple(overrides))


def _clock(value: str, where: str) -> dt.time:
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value)
    if not match:
        raise ConfigError(f"{where}: {value!r} is not a time of day (HH:MM)")
    return dt.time(int(match.group(1)), int(match.group(2)))


def _local(value: Any, tz: ZoneInfo, where: str) -> dt.datetime:
    """A local date ("2026-12-24": midnight) or date and time ("2026-12-24 09:00") in the
    rotation's time zone -> an aware UTC instant."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return value.astimezone(dt.timezone.utc)
        return local_instant(value.date(), value.time(), tz)
    if isinstance(value, dt.date):
        return local_instant(value, dt.time(0, 0), tz)
    if isinstance(value, str):
        text = value.strip().replace("T", " ")
        try:
            if " " in text:
                day, clock = text.split(" ", 1)
                return local_instant(dt.date.fromisoformat(day), _clock(clock.strip(), where),
                                     tz)
            return local_instant(dt.date.fromisoformat(text), dt.time(0, 0), tz)
        except ValueError:
            pass
    raise ConfigError(f"{where}: {value!r} is not a date (YYYY-MM-DD) or a date and time "
                      "(YYYY-MM-DD HH:MM)")


def _tables(items: Any, what: str, header: str) -> list[dict[str, Any]]:
    """`items` as the array of tables TOML writes as `header`; ConfigError else."""
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ConfigError(f"{what} must be an array of tables ({header})")
    return items


def _experts(body: Mapping[str, Any], where: str) -> tuple[Expert, ...]:
    items = body.get("experts")
    if not items:
        raise ConfigError(f"{where} needs at least one [[services.NAME.experts]] entry")
    experts = []
    for n, item in enumerate(_tables(items, f"{where} experts", "[[services.NAME.experts]]"),
                             start=1):
        at = f"{where} expert {n}"
        reject_unknown_keys(item, at, _EXPERT_KEYS)
        address = _string(item, at, "address").strip()
        if not address:
            raise ConfigError(f"{at}: address is required")
        if not _ADDRESS.match(address):
            raise ConfigError(f"{at} address: {address!r} is not an email address")
        name = _string(item, at, "name").strip() or address
        role = _string(item, at, "role").strip().lower() or "expert"
        if any(c in name + role for c in "\r\n"):
            raise ConfigError(f"{at}: name and role must be one line")
        pager = _string(item, at, "pager").strip()
        if pager and not _ADDRESS.match(pager):
            raise ConfigError(f"{at} pager: {pager!r} is not an email address")
        experts.append(Expert(name=name, address=address.lower(), role=role,
                              pager=pager.lower()))
    return tuple(experts)


def _string(table: Mapping[str, Any], where: str, key: str) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise ConfigError(f"{where} {key} must be a string, not {value!r}")
    return value


def _strings(table: Mapping[str, Any], where: str, key: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} {key} must be a list of strings, not {value!r}")
    return value
