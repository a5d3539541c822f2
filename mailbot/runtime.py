"""Builds every part from a Config: the one object the daemon and the CLI share.

Tests build it with their own clock and relay; nothing here starts threads or sockets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailbot.clock import Clock
from mailbot.compose import Composer, check_overrides, has_overrides, make_environment
from mailbot.config import Config, builtin_templates_dir
from mailbot.lock import WriterLock
from mailbot.outbox import Outbox
from mailbot.pipeline import Pipeline
from mailbot.planning import Planner
from mailbot.relays import Relay, relay_for
from mailbot.parsing.postmortem import people_directory
from mailbot.rules.recipients import RecipientPolicy
from mailbot.services import ServiceDirectory, load_services
from mailbot.spool import Spool
from mailbot.store import Store

if TYPE_CHECKING:
    from mailbot.scheduler import Scheduler


@dataclass
class Runtime:
    config: Config
    clock: Clock
    store: Store
    spool: Spool
    outbox: Outbox
    composer: Composer
    planner: Planner
    pipeline: Pipeline
    lock: WriterLock
    directory: ServiceDirectory
    # The scheduled jobs, in a process that runs them (`serve`, `tick`); None elsewhere.
    scheduler: Scheduler | None = None

    def take_lock(self) -> bool:
        """Take the writer lock (False: another process holds it), then read the store
        again: whoever held the lock before may have committed since this Runtime read
        it, and a stale copy would hand out incident numbers already given."""
        if not self.lock.acquire():
            return False
        self.store.reload()
        return True

    def close(self) -> None:
        self.store.close()


def build_runtime(config: Config, *, clock: Clock | None = None,
                  relay: Relay | None = None, scheduled: bool = False) -> Runtime:
    """Create (or open) every part under [storage] dir; with `scheduled`, the scheduler
    and its jobs too."""
    clock = clock or Clock()
    storage = config.storage
    Path(storage.dir).mkdir(parents=True, exist_ok=True)
    store = Store(storage.db_dir)
    spool = Spool(storage.spool_dir, clock)
    outbox = Outbox(
        storage.outbox_dir,
        relay or relay_for(config.outbound, storage.sent_maildir),
        clock,
        retry_initial=config.outbound.retry_initial_seconds,
        retry_max=config.outbound.retry_max_seconds,
    )
    env = make_environment(config.templates_dir, storage.template_cache_dir)
    check_overrides(env, config.templates_dir)
    directory = load_services(config.services_file)
    # The directory's addresses and pagers: written by the operator, so mail (and pages)
    # may go there; nothing outside it or the allowed senders is ever paged.
    composer = Composer(env, config.list.bot_address, f"{config.list.name} bot",
                        list_address=config.list.address,
                        builtin_env=make_environment(builtin_templates_dir(),
                                                     storage.template_cache_dir)
                        if has_overrides(config.templates_dir) else None,
                        recipients=RecipientPolicy.from_config(
                            config, configured=directory.addresses()))
    planner = Planner(config, store, composer, directory=directory,
                      experts_for=lambda services: directory.contacts_for(
                          list(services), at=clock.now()),
                      unknown_services=lambda services: directory.unknown(list(services)),
                      people=people_directory((e.name, e.address) for service in directory
                                              for e in service.experts))
    # Every mail may link an incident to its page (the digest links each of its incidents).
    composer.common["incident_url"] = planner.incident_url
    pipeline = Pipeline(config, store, spool, outbox, planner, clock)
    rt = Runtime(config=config, clock=clock, store=store, spool=spool, outbox=outbox,
                 composer=composer, planner=planner, pipeline=pipeline, directory=directory,
                 lock=WriterLock(storage.lock_file))
    if scheduled:
        rt.scheduler = build_scheduler(rt)
    return rt


def build_scheduler(rt: Runtime) -> Scheduler:
    """The scheduler with every job mailbot runs: the digest, the reminders (stale
    updates, postmortems, pages, directory reviews), the action items and the weekly
    summary. The scheduler is generic: it is handed its jobs here and imports none."""
    # Imported here: only `serve` and `tick` run jobs; an `ingest` does not load them.
    from mailbot import actions, digest, reminders, weekly
    from mailbot.scheduler import Scheduler

    return Scheduler(rt, [digest.digest_job(rt.config), *reminders.reminder_jobs(rt.config),
                          *actions.action_item_jobs(rt.config),
                          *weekly.weekly_jobs(rt.config)])
