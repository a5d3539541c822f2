"""Who mailbot may write to: the list, allowed senders, and addresses the operator wrote
in the configuration. Pure; `Composer.compose` applies it to every mail it builds.

A person named in a message (`Commander:`, `Postmortem-Owner:`, roles) is recorded and
shown in acknowledgements and pages as written, but mailed only when this policy allows:
otherwise anyone who can post as an allowed sender could make mailbot mail any address
(100 forged declarations naming strangers made one `mailbot tick` mail 200 of them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from mailbot.config import Config
from mailbot.rules.senders import is_allowed


@dataclass(frozen=True)
class RecipientPolicy:
    """Decides, address by address, whether mailbot may send to it."""

    config: Config
    configured: frozenset[str] = frozenset()  # addresses the operator named in config

    @classmethod
    def from_config(cls, config: Config, configured: Iterable[str] = ()) -> "RecipientPolicy":
        """The policy for `config`; `configured`: more operator-written addresses (the
        experts of services.toml). [postmortem] leadership is always included."""
        return cls(config, frozenset(a.strip().lower() for a in
                                     (*config.postmortem.leadership, *configured)))

    def allows(self, address: str) -> bool:
        """The list, an allowed sender ([policy] allowed_senders), or a configured one."""
        address = address.strip().lower()
        return (address == self.config.list.address or address in self.configured
                or is_allowed(address, self.config))

    def split(self, addresses: Iterable[str]) -> tuple[list[str], list[str]]:
        """(the addresses that may be mailed, those that may not), order kept."""
        kept: list[str] = []
        withheld: list[str] = []
        for address in addresses:
            (kept if self.allows(address) else withheld).append(address)
        return kept, withheld
