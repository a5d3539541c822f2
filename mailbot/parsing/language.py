"""The vocabulary of the email language: incident prefix, severities, phases, role names.

Takes the configured names (or a Config) and hands on a frozen `Language` plus the two
forgiving value readers every other parsing stage uses: `parse_severity`, `parse_phase`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - only for type hints
    from mailbot.config import Config

# Role names that may be written as their own field (`Comms: bob@example.com`), in
# addition to appearing as `role=person` pairs in `Roles:`. PRODUCT.md lists Comms,
# Liaison and Scribe "…"; these are the usual incident-response roles.
DEFAULT_ROLES = (
    "comms", "liaison", "customer-liaison", "scribe", "expert", "ops", "tech-lead", "deputy",
)

DEFAULT_SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4")
DEFAULT_PHASES = ("investigating", "identified", "mitigating", "monitoring", "resolved")

# "sev1", "Sev-1", "sev 1 (critical)", "S1", "1", "severity 2": optional letters, an optional
# separator, the number. One bounded pass, no nested quantifiers.
_SEVERITY_VALUE = re.compile(r"([a-z]{0,10})[ \t_.:#-]{0,3}([0-9]{1,3})(?![0-9])")
_DECORATION = " \t*_`'\"“”‘’()[]{}<>"
_PHASE_WORD = re.compile(r"[a-z][a-z_-]{0,40}")


@dataclass(frozen=True)
class Language:
    """What the parser accepts: the configured prefix, severity levels, phases and roles."""

    prefix: str = "INC"
    severities: tuple[str, ...] = DEFAULT_SEVERITIES
    phases: tuple[str, ...] = DEFAULT_PHASES
    roles: tuple[str, ...] = DEFAULT_ROLES
    timezone: str = "UTC"  # the zone of a `Started-At:` / `Resolved-At:` that names none

    def __post_init__(self) -> None:
        # Normalise once so every reader can compare without re-casing.
        object.__setattr__(self, "prefix", self.prefix.strip().upper() or "INC")
        object.__setattr__(self, "severities", tuple(s.strip().upper() for s in self.severities))
        object.__setattr__(self, "phases", tuple(p.strip().lower() for p in self.phases))
        object.__setattr__(self, "roles", tuple(r.strip().lower() for r in self.roles))

    @classmethod
    def from_config(cls, config: "Config") -> "Language":
        """The language described by a loaded configuration."""
        return cls(
            prefix=config.list.incident_prefix,
            severities=tuple(s.name for s in config.severities),
            phases=tuple(config.phases),
            timezone=config.schedule.timezone,
        )


def _split_level(name: str) -> tuple[str, int] | None:
    m = re.fullmatch(r"([A-Z]*)([0-9]+)", name)
    return (m.group(1).lower(), int(m.group(2))) if m else None


def parse_severity(value: str, lang: Language, *, need_letters: bool = False) -> str | None:
    """The canonical severity named by `value` (`sev 1`, `Sev-1`, `S1`, `1`), or None.

    `need_letters` refuses a bare number (used for subject tags, where `[1]` means nothing).
    """
    text = (value or "")[:200].strip(_DECORATION).lower()
    if not text:
        return None
    for name in lang.severities:  # an exact configured name always wins
        if text == name.lower():
            return name
    m = _SEVERITY_VALUE.match(text)
    if not m:
        return None
    letters, number = m.group(1), int(m.group(2))
    if need_letters and not letters:
        return None
    for name in lang.severities:
        split = _split_level(name)
        if split is None:
            continue
        prefix, level = split
        if level != number:
            continue
        if letters in ("", prefix, "severity", "sev", "level") or (
            prefix and letters == prefix[0]
        ):
            return name
    return None


def parse_phase(value: str, lang: Language) -> str | None:
    """The configured phase named by `value` in any case (`Mitigating`, `mitigating - rollback`)."""
    text = (value or "")[:200].strip(_DECORATION).lower()
    if not text:
        return None
    if text in lang.phases:
        return text
    m = _PHASE_WORD.match(text)
    if m and m.group(0) in lang.phases:
        return m.group(0)
    return None
