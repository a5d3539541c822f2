"""Real mail written by nobody here, for the parsing and fuzz tests.

| where | what | expected new text |
| --- | --- | --- |
| talon's `tests/fixtures/standard_replies/*.eml` | whole MIME replies from Android, AOL, Apple Mail, Comcast, Gmail, Hotmail, iPhone, Outlook, Sparrow, Thunderbird, Yahoo | `Hello`, unless a file `<name>_reply_text` beside it holds the expected text |
| talon's `tests/fixtures/html_replies/*.html` | HTML bodies of replies from Gmail, Hotmail, mail.ru, Outlook 2003/2007/2010, Thunderbird, Windows Mail, Yandex | `Hi. I am fine.` / `Thanks,` / `Alex` (white space removed) |
| talon's `tests/fixtures/reply-quotations-share-block.eml` | a reply whose quote shares a block with the new text | the text above the quote |
| `tests/data/email_reply_parser/*.txt` | plain bodies: top posts, bottom posts, inline replies, multi-line "On … wrote:" headers, Windows line endings, signatures, and `pathological.txt` (exponential for naive regexes) | the text above the first quote or signature; inline replies keep every unquoted fragment |

talon's fixtures come from its sdist on the package registry, pinned by version and
sha256 (`PINNED`): fetched with `pip download` the first time, checked, unpacked into a
cache (`$MAILBOT_CORPUS_CACHE`, else `$XDG_CACHE_HOME/mailbot/corpus`, else
`~/.cache/mailbot/corpus`) and read from there afterwards, offline. A download whose hash
differs is refused. email_reply_parser's bodies are in no package's sdist: they are kept
in `tests/data/email_reply_parser/` with their MIT licence and the upstream commit.
Each keeps its licence: talon's (Apache 2.0) is unpacked beside its fixtures.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pinned:
    """An sdist on the package registry and the part of it the tests read."""

    name: str
    version: str
    sha256: str
    keep: tuple[str, ...]  # paths inside the sdist's top folder
    top: str = ""  # the sdist's top folder, when it is not NAME-VERSION (flufl_bounce-...)

    @property
    def folder(self) -> str:
        return self.top or f"{self.name}-{self.version}"


TALON = Pinned("talon", "1.4.4",
               "263d122609747691e9f75726ea565f5da8a40146a7a81eb5883e51b8224b0e5c",
               ("tests/fixtures", "LICENSE"))
# Real delivery reports and auto-replies (tests/bouncecorpus.py reads them).
FLUFL_BOUNCE = Pinned("flufl.bounce", "6.0.0",
                      "a1df16b9d1877ae4536f7d76c00d8421fcefbe694f80f5285d05c45a2547b1bc",
                      ("tests/data", "LICENSE"), top="flufl_bounce-6.0.0")
BOUNCED = Pinned("bounced", "0.3.0",
                 "c3ff191fbef7f041c7e66835d2c60e25d3f093bd98befb8cd619a4bf596f7c94",
                 ("src/bounced/tests", "LICENSE"))
PINNED = {p.name: p for p in (TALON, FLUFL_BOUNCE, BOUNCED)}

ERP = Path(__file__).resolve().parents[1] / "data" / "email_reply_parser"


class CorpusError(RuntimeError):
    """The corpus cannot be had: not cached, and the download failed or did not match."""


def cache_root() -> Path:
    if os.environ.get("MAILBOT_CORPUS_CACHE"):
        return Path(os.environ["MAILBOT_CORPUS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mailbot" / "corpus"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def unpacked(pinned: Pinned) -> Path:
    """The sdist's top folder, unpacked in the cache (fetched and checked the first time)."""
    root = cache_root()
    final = root / pinned.folder
    if (final / ".sha256").is_file() and (final / ".sha256").read_text() == pinned.sha256:
        return final
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".fetch-") as tmp:
        staging = Path(tmp) / "unpacked"
        unpack_checked(_download(pinned, Path(tmp)), pinned, staging)
        try:
            os.rename(staging / pinned.folder, final)
        except OSError:
            # Another test run unpacked it meanwhile (same hash, same files), or a stale
            # folder without the hash mark is in the way: replace that one.
            if not ((final / ".sha256").is_file()
                    and (final / ".sha256").read_text() == pinned.sha256):
                shutil.rmtree(final, ignore_errors=True)
                os.rename(staging / pinned.folder, final)
    return final


def unpack_checked(archive: Path, pinned: Pinned, into: Path) -> Path:
    """Unpack the kept parts of `archive` into `into` if its sha256 is the pinned one;
    CorpusError (and nothing unpacked) otherwise."""
    got = sha256_of(archive)
    if got != pinned.sha256:
        raise CorpusError(f"{archive.name}: sha256 {got}, pinned {pinned.sha256}; refused")
    _extract(archive, pinned, into)
    (into / pinned.folder / ".sha256").write_text(pinned.sha256)
    return into / pinned.folder


def _download(pinned: Pinned, into: Path) -> Path:
    spec = f"{pinned.name}=={pinned.version}"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
         "--quiet", "--disable-pip-version-check", spec, "-d", str(into)],
        capture_output=True, text=True, timeout=600)
    found = sorted(into.glob(f"{pinned.folder}.tar.gz"))
    if done.returncode != 0 or not found:
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        reason = errors[-1] if errors else done.stderr.strip()[-800:]
        raise CorpusError(f"cannot fetch the test corpus {spec} (needed once, then cached "
                          f"in {cache_root()}): {reason}")
    return found[0]


def _extract(archive: Path, pinned: Pinned, into: Path) -> None:
    prefixes = tuple(f"{pinned.folder}/{keep}" for keep in pinned.keep)
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers()
                   if (m.isfile() or m.isdir())
                   and any(m.name == p or m.name.startswith(p + "/") for p in prefixes)]
        if hasattr(tarfile, "data_filter"):  # 3.11.4+: refuses links and paths outside
            tar.extractall(into, members=members, filter="data")
        else:  # only regular files and folders under the sdist's own top folder
            tar.extractall(into, members=[m for m in members if ".." not in m.name.split("/")])


def talon_fixtures() -> Path:
    """talon's tests/fixtures folder (standard_replies/, html_replies/, *.eml)."""
    return unpacked(TALON) / "tests" / "fixtures"
