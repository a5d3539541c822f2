"""Finding the real servers' programs the tests run (Dovecot, Postfix, swaks)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# Debian puts daemons in sbin, which a non-root PATH often lacks.
_SEARCH_PATH = ("/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin", "/usr/local/bin")


def find_program(name: str) -> str | None:
    """`name` on PATH, or in the sbin directories a non-root PATH often lacks."""
    found = shutil.which(name)
    if found:
        return found
    for directory in _SEARCH_PATH:
        candidate = Path(directory) / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None
