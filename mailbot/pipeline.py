"""The pipeline: spool -> parse -> plan -> store -> outbox, in that order.

Takes spool names; hands each parsed message to the planner (`planning.py`: what the
message would do, without side effects), commits the plan to the store and queues its
mail in the outbox (the commit protocol, `effects.py`). This is the one place that turns
a message's plan into side effects, that runs group commits, and that catches a
message's unexpected error (the message goes to the spool's failed/, the others go on).
An OSError is never the message's fault: it stops the pass and the message waits in the
spool (ingest exits 75, serve tries again).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import threading
import traceback
from pathlib import Path
from typing import Any, Callable

from mailbot.clock import Clock
from mailbot.config import Config
from mailbot.durable import fsync_dir
from mailbot.effects import Committed, finish_effects, stage
from mailbot.models import ParsedMail
from mailbot.outbox import Outbox
from mailbot.parsing import Language, parse_mail
from mailbot.planning import Plan, Planner
from mailbot.spool import Spool
from mailbot.store import Store

log = logging.getLogger(__name__)

GROUP_SIZE = 64  # messages per group commit (one hot-file write)


class Pipeline:
    """Processes spooled messages one at a time, exactly once in effect."""

    def __init__(
        self,
        config: Config,
        store: Store,
        spool: Spool,
        outbox: Outbox,
        planner: Planner,
        clock: Clock,
        *,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.spool = spool
        self.outbox = outbox
        self.planner = planner
        self.clock = clock
        self.language = Language.from_config(config)
        self.on_change = on_change
        self.archive_dir = config.storage.archive_dir
        self._archive_folders: set[Path] = set()  # made already (a mkdir per message less)
        # Held while one message (or one scheduled job) reads and commits incidents, so
        # the worker and the scheduler never interleave a read-modify-write.
        self.lock = threading.RLock()

    # ------------------------------------------------------------ running

    def recover(self) -> int:
        """Finish commits a crash interrupted, and drop the spool writes it cut short.
        Returns how many commits were finished."""
        self.spool.clean_tmp()
        self.store.repair()
        pending = [Committed(key, index, outgoing)
                   for key, index, outgoing in self.store.pending_journal()]
        redone = finish_effects(self.store, self.outbox, pending, replay=True)
        # The last group's entries stay in the journal after a clean stop too (they go at
        # the next commit): only a commit that had work left is worth telling about.
        if redone:
            log.info("recovered %d interrupted commit(s)", redone)
        elif pending:
            log.debug("journal: %d finished commit(s) from the last run, nothing left to do",
                      len(pending))
        return redone

    def process_pending(self, stop: Any = None) -> int:
        """Process everything waiting in the spool, oldest first.

        Messages go in groups of up to GROUP_SIZE that share one durable write of the hot
        file (group commit): each message is decided and committed in memory in order,
        seeing the ones before it; then the hot file is written once, and only then are
        the index records and outgoing mail written and the spool entries removed. A crash
        before that write leaves every message of the group in the spool, with no effect;
        after it, the journal finishes them at start-up, as for a single commit."""
        count = 0
        names = self.spool.pending()
        for start in range(0, len(names), GROUP_SIZE):
            if stop is not None and stop.is_set():
                break
            with self.lock:
                count += self._process_group(names[start:start + GROUP_SIZE], stop)
        return count

    def _process_group(self, names: list[str], stop: Any = None) -> int:
        """Commit `names` as one group, then finish it (`_finish_group`).

        If committing raises anything but OSError (a plan the store cannot hold, say),
        the whole group is undone in memory and nothing of it is on disk: its messages go
        again, one group each, so that only the one at fault lands in failed/. An error
        while finishing a group on disk is not a message's fault: it is raised (the
        journal finishes the group at the next start)."""
        committed: list[tuple[str, Committed, Plan]] = []
        duplicates: list[str] = []
        try:
            seen = self._commit_group(names, committed, duplicates, stop)
        except Exception as exc:
            if committed and self.store.is_flushed():
                # The group's write happened: what failed came after it.
                self._finish_group(committed, duplicates)
                raise
            if isinstance(exc, OSError):
                raise  # disk trouble: the group waits in the spool
            return self._after_failed_group(names, stop)
        self._finish_group(committed, duplicates)
        return seen

    def _after_failed_group(self, names: list[str], stop: Any) -> int:
        error = traceback.format_exc()
        reason = error.strip().splitlines()[-1]
        if len(names) == 1:
            log.error("%s failed while committing, moved to failed/: %s", names[0], reason)
            self.spool.fail(names[0], error)
            return 1
        log.warning("a group of %d messages failed while committing (%s); committing "
                    "them one by one", len(names), reason)
        seen = 0
        for name in names:
            if stop is not None and stop.is_set():
                break
            seen += self._process_group([name], stop)
        return seen

    def _commit_group(self, names: list[str],
                      committed: list[tuple[str, Committed, Plan]],
                      duplicates: list[str], stop: Any = None) -> int:
        """Decide and commit each message in memory, then write the group once; fills
        `committed` and `duplicates`, returns how many messages were looked at."""
        seen = 0
        with self.store.group():
            folders: set[Path] = set()
            try:
                for name in names:
                    if stop is not None and stop.is_set():
                        break
                    seen += 1
                    entry = self._commit_one(name, folders)
                    if entry == "duplicate":
                        duplicates.append(name)
                    elif entry is not None:
                        committed.append(entry)
            finally:
                # The archive links must be durable before the commit that relies on them.
                for folder in folders:
                    fsync_dir(folder)
        return seen

    def _own_key_if_taken(self, parsed: ParsedMail) -> ParsedMail:
        """`parsed`, keyed by its Message-ID and author when a message that was ignored (a
        stranger's, a loop's) from another author took that Message-ID first: a
        predictable id must not let a stranger have a colleague's update dropped as a
        duplicate. A retransmission of the message has the same author, so it is still
        one; the Message-ID itself still threads (see `Planner._link`)."""
        record = self.store.message_record(parsed.key)
        author = parsed.from_address.lower()
        if (record and record.get("outcome") == "ignore" and "author" in record
                and record["author"] != author):
            return dataclasses.replace(parsed, key=f"{parsed.key}|{author}")
        return parsed

    def _commit_one(self, name: str, folders: set[Path]) -> Any:
        """Decide one message and commit it in memory (the group writes it)."""
        try:
            spooled = self.spool.read(name)
        except FileNotFoundError:
            return None
        try:
            folders.add(self._archive(spooled.name, spooled.path, spooled.received_at))
            parsed = parse_mail(spooled.raw, self.language)
            if self.store.is_processed(parsed.key):
                # Only a processed key can have been taken, so a new message's index
                # record is read once, here and not again in `_own_key_if_taken`.
                parsed = self._own_key_if_taken(parsed)
                if self.store.is_processed(parsed.key):
                    log.info("%s <%s> duplicate: already processed", name, parsed.key)
                    return "duplicate"
            plan = self.planner.evaluate(parsed, spooled.received_at)
            # Who the key was processed for: see `_own_key_if_taken`.
            plan.index.setdefault(parsed.key, {})["author"] = plan.mail.from_address.lower()
        except OSError:
            raise
        except Exception:  # noqa: BLE001 - one bad message must not stop the list
            # Nothing is written before the commit below: only this message goes.
            error = traceback.format_exc()
            log.error("%s failed, moved to failed/: %s", name, error.strip().splitlines()[-1])
            self.spool.fail(name, error)
            return None
        # An error from here on may have changed the group's memory: it undoes the whole
        # group (see `_process_group`).
        committed = stage(self.store, parsed.key, incidents=plan.incidents,
                          outgoing=plan.outgoing, index=plan.index,
                          next_incident_id=plan.next_incident_id, now=spooled.received_at)
        return name, committed, plan

    def _finish_group(self, committed: list[tuple[str, Committed, Plan]],
                      duplicates: list[str]) -> None:
        """After the group's hot-file write: the rest of the commit protocol (index
        records, mail, one sync, journal), then the spool entries go."""
        finish_effects(self.store, self.outbox, [entry for _, entry, _ in committed])
        self.spool.done_many([name for name, *_ in committed] + duplicates)
        for *_, plan in committed:
            self._log(plan)
        if self.on_change and any(plan.incidents for *_, plan in committed):
            self.on_change()

    def _archive(self, name: str, path: Path, received: dt.datetime) -> Path:
        """Link the raw message into the monthly archive; returns the folder, whose
        directory the caller syncs once for the whole group."""
        folder = self.archive_dir / received.strftime("%Y-%m")
        if folder not in self._archive_folders:
            folder.mkdir(parents=True, exist_ok=True)
            self._archive_folders.add(folder)
        try:
            os.link(path, folder / name)  # same bytes, no copy; the spool entry goes later
        except FileExistsError:
            pass  # linked before a crash
        return folder

    def _log(self, plan: Plan) -> None:
        d = plan.decision
        ref = f"{self.config.list.incident_prefix}-{d.incident_id}" if d.incident_id else "-"
        what = str(d.action)
        if plan.changes:
            what += " (" + ", ".join(c.field for c in plan.changes) + ")"
        sent = ", ".join(f"{m.kind}->{'/'.join(m.recipients)}" for m in plan.outgoing) or "no mail"
        log.info("<%s> from %s: %s %s: %s; %s", plan.mail.message_id or plan.mail.key,
                 plan.mail.from_address or "?", ref, what, d.reason, sent)
        for note in plan.capped:
            log.warning("<%s> %s", plan.mail.message_id, note)
