"""`configfile.py`: what `ingest` beside `serve` reads of the config file must be what
`load_config` reads: the same storage folder, whatever the file says."""

from __future__ import annotations

import pytest

from mailbot.config import load_config
from mailbot.configfile import ConfigError, StorageFolders, StorageLayout, storage_dir
from tests.support import free_port, write_config


@pytest.mark.parametrize("written", [None, "var", "state/here", "../elsewhere", "/abs/store"])
def test_the_storage_folder_is_the_one_load_config_reads(tmp_path, written):
    (tmp_path / "etc").mkdir()
    cfg = write_config(tmp_path / "etc", smtp_port=free_port())
    text = cfg.read_text()
    start = text.index("[storage]")
    end = text.index("\n[", start + 1)
    storage = "" if written is None else f'[storage]\ndir = "{written}"\n'
    cfg.write_text(text[:start] + storage + text[end + 1:])
    config = load_config(cfg)
    assert storage_dir(cfg) == config.storage.dir
    folders = StorageFolders(config.storage.dir)
    for name, value in vars(StorageLayout).items():
        if isinstance(value, property):
            assert getattr(folders, name) == getattr(config.storage, name), name


def test_relative_to_the_file_not_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "etc").mkdir()
    cfg = write_config(tmp_path / "etc", smtp_port=free_port())
    cfg.write_text(cfg.read_text().replace(f'dir = "{tmp_path / "etc" / "var"}"',
                                           'dir = "spool-here"'))
    monkeypatch.chdir(tmp_path)
    assert storage_dir(cfg.relative_to(tmp_path)) == tmp_path / "etc" / "spool-here"


@pytest.mark.parametrize("storage", ['[storage]\ndir = 3\n', '[storage]\ndir = ""\n',
                                     'storage = "var"\n'])
def test_a_storage_key_that_is_no_plain_folder_gives_none(tmp_path, storage):
    """None: the caller loads the whole file, which decides (and says what is wrong in
    one line)."""
    cfg = tmp_path / "mailbot.toml"
    cfg.write_text(storage)
    assert storage_dir(cfg) is None


def test_a_missing_file_gives_no_folder_and_broken_toml_one_line(tmp_path):
    assert storage_dir(tmp_path / "nope.toml") is None
    broken = tmp_path / "broken.toml"
    broken.write_text("[storage\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        storage_dir(broken)
