"""Compiled templates kept between processes (var/cache/templates): used when the source
is unchanged, ignored when it changed, and never a reason for a mail not to render."""

from __future__ import annotations

import shutil
from pathlib import Path

import jinja2
import pytest

from mailbot.compose import make_environment

REPO_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    copy = tmp_path / "templates"
    shutil.copytree(REPO_TEMPLATES, copy)
    return copy


def _compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    original = jinja2.Environment.compile

    def counting(self, source, name=None, filename=None, raw=False, defer_init=False):
        calls.append(name or "")
        return original(self, source, name, filename, raw, defer_init)

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    return calls


def test_a_second_process_loads_compiled_templates(templates, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    calls = _compiles(monkeypatch)
    first = make_environment(templates, cache).get_template("mail/ack.txt")
    assert calls == ["mail/ack.txt"]
    assert list(cache.glob("__jinja2_*.cache")), "nothing was written to the cache"
    calls.clear()
    second = make_environment(templates, cache).get_template("mail/ack.txt")
    assert calls == [], "the cached template was compiled again"
    assert second.blocks.keys() == first.blocks.keys()


def test_an_edited_template_is_compiled_afresh(templates, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    path = templates / "mail" / "status.txt"
    make_environment(templates, cache).get_template("mail/status.txt")
    path.write_text("{% block subject %}edited{% endblock %}{% block body %}b{% endblock %}")
    calls = _compiles(monkeypatch)
    tmpl = make_environment(templates, cache).get_template("mail/status.txt")
    assert calls == ["mail/status.txt"]
    assert "".join(tmpl.blocks["subject"](tmpl.new_context({}))) == "edited"


def test_a_damaged_cache_entry_is_compiled_again(templates, tmp_path):
    cache = tmp_path / "cache"
    make_environment(templates, cache).get_template("mail/status.txt")
    for entry in cache.glob("__jinja2_*.cache"):
        entry.write_bytes(entry.read_bytes()[:40])  # cut short, as by a full disk
    tmpl = make_environment(templates, cache).get_template("mail/status.txt")
    assert "subject" in tmpl.blocks


def test_an_unusable_cache_never_stops_rendering(templates, tmp_path, caplog):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    env = make_environment(templates, not_a_dir / "cache")  # cannot be created
    assert env.bytecode_cache is None
    assert "subject" in env.get_template("mail/status.txt").blocks

    cache = tmp_path / "gone"
    env = make_environment(templates, cache)
    shutil.rmtree(cache)  # writes now fail
    assert "subject" in env.get_template("mail/ack.txt").blocks
    assert "template cache not written" in caplog.text
