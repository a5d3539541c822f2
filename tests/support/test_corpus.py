"""The test corpus is had from a pinned, hash-checked sdist, and a changed one is refused."""

from __future__ import annotations

import io
import tarfile

import pytest

from tests.support.corpus import ERP, TALON, CorpusError, talon_fixtures, unpack_checked


def test_the_corpus_is_complete_and_keeps_its_licences():
    talon = talon_fixtures()
    assert len(list((talon / "standard_replies").glob("*.eml"))) == 12
    assert len(list((talon / "html_replies").glob("*.html"))) == 9
    assert (talon.parents[1] / "LICENSE").read_text().startswith("Apache License")
    assert len(list(ERP.glob("*.txt"))) == 22
    assert "MIT License" in (ERP / "LICENSE").read_text()
    assert "email_reply_parser commit" in (ERP / "SOURCE").read_text()


def _sdist(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{TALON.folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_an_archive_whose_hash_differs_is_refused_and_nothing_unpacked(tmp_path):
    archive = tmp_path / f"{TALON.folder}.tar.gz"
    archive.write_bytes(_sdist({"tests/fixtures/standard_replies/gmail.eml": b"From: x\n\nhi"}))
    with pytest.raises(CorpusError, match="sha256"):
        unpack_checked(archive, TALON, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_only_the_kept_parts_are_unpacked(tmp_path):
    data = _sdist({"tests/fixtures/a.eml": b"From: x\n\nhi", "setup.py": b"import os",
                   "LICENSE": b"Apache License"})
    archive = tmp_path / "x.tar.gz"
    archive.write_bytes(data)
    import hashlib
    from dataclasses import replace

    pinned = replace(TALON, sha256=hashlib.sha256(data).hexdigest())
    top = unpack_checked(archive, pinned, tmp_path / "out")
    assert (top / "tests" / "fixtures" / "a.eml").read_bytes() == b"From: x\n\nhi"
    assert (top / "LICENSE").exists() and not (top / "setup.py").exists()
