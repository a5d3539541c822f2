"""The configuration file itself: where it is, reading it as TOML, paths written in it, and
the storage folder it names.

Kept apart from `config.py` (the sections, their keys and checks) so that a process that
only spools a message beside a running `serve` reads the file for `[storage] dir` and
nothing more: an MTA starts one such process per message.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path("config/mailbot.toml")
DEFAULT_STORAGE = Path("var")  # `[storage] dir` when the file does not set it


class ConfigError(Exception):
    """The configuration is unusable; the message says which key and why."""


def config_path(path: Path | str | None) -> Path:
    """The file to read: the one named, else $MAILBOT_CONFIG, else config/mailbot.toml."""
    if path is None:
        path = os.environ.get("MAILBOT_CONFIG") or DEFAULT_CONFIG
    return Path(path)


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


def beside(config_path: Path, value: str | Path) -> Path:
    """A path from the config file: a relative one is relative to the file's folder, not
    to the directory mailbot happens to run in (a cron job runs in $HOME)."""
    path = Path(value)
    return path if path.is_absolute() else config_path.absolute().parent / path


def storage_dir(path: Path) -> Path | None:
    """`[storage] dir` as `load_config` reads it, from the file alone: None when the file
    is missing or the key is not a plain string (`load_config` then says what is wrong)."""
    raw = read_toml(path)
    if raw is None:
        return None
    storage = raw.get("storage", {})
    if not isinstance(storage, dict):
        return None
    value = storage.get("dir", str(DEFAULT_STORAGE))
    if not isinstance(value, str) or not value:
        return None
    return beside(path, value)


class StorageLayout:
    """The folders inside `[storage] dir`: one definition for the processes that load the
    whole configuration and for the one that only spools."""

    dir: Path

    @property
    def spool_dir(self) -> Path:
        return self.dir / "spool"

    @property
    def lock_file(self) -> Path:
        return self.dir / "mailbot.lock"

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


class StorageFolders(StorageLayout):
    """The layout under a storage folder known without the rest of the configuration."""

    def __init__(self, dir: Path) -> None:
        self.dir = dir
