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

import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, NamedTuple

from mailbot.config import ConfigError, read_toml, reject_unknown_keys

_SERVICE_KEYS = {"description", "experts", "escalation", "depends_on", "aliases", "runbook"}
_EXPERT_KEYS = {"name", "address", "role"}
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


@dataclass(frozen=True)
class Service:
    name: str  # canonical, lower case
    description: str
    experts: tuple[Expert, ...]
    escalation: str = ""
    depends_on: tuple[str, ...] = ()  # canonical names of the services this one calls
    aliases: tuple[str, ...] = ()  # other names people write in `Services:`
    runbook: str = ""  # an http(s) URL, or ""


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
                self._by_address.setdefault(expert.address, expert)

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

    def contacts_for(self, names: Iterable[str]) -> Contacts:
        """The experts of `experts_for`, each person once with all their duties, and the
        runbooks of the same services: a mail lists a person on call for two services
        once, not twice."""
        refs = self.experts_for(names)
        people: dict[str, tuple[Expert, list[Duty]]] = {}
        runbooks: dict[str, str] = {}
        for ref in refs:
            entry = people.setdefault(ref.expert.address, (ref.expert, []))
            entry[1].append(Duty(ref.service, ref.expert.role, ref.via))
            runbook = self._services[ref.service].runbook
            if runbook:
                runbooks.setdefault(ref.service, runbook)
        return Contacts(
            people=tuple(Contact(e.name, e.address, tuple(d)) for e, d in people.values()),
            runbooks=tuple(runbooks.items()))

    def dependents_of(self, name: str) -> tuple[str, ...]:
        """The services that call `name` directly, in file order."""
        canonical = self.resolve(name)
        return tuple(s.name for s in self._services.values() if canonical in s.depends_on)

    def expert_by_address(self, address: str) -> Expert | None:
        """The first expert entry with this address (any service), for showing names."""
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
        ))
    return services


def _experts(body: Mapping[str, Any], where: str) -> tuple[Expert, ...]:
    items = body.get("experts")
    if not items:
        raise ConfigError(f"{where} needs at least one [[services.NAME.experts]] entry")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ConfigError(f"{where} experts must be an array of tables "
                          "([[services.NAME.experts]])")
    experts = []
    for n, item in enumerate(items, start=1):
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
        experts.append(Expert(name=name, address=address.lower(), role=role))
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
