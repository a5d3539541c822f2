"""The command line: each command returns an exit status; errors are one line, never a
traceback (unless --debug)."""

from __future__ import annotations

import argparse
import enum
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NoReturn

from mailbot import __version__
from mailbot.configfile import ConfigError

if TYPE_CHECKING:
    import datetime as dt

    from mailbot.config import Config
    from mailbot.models import OutgoingMail
    from mailbot.runtime import Runtime
    from mailbot.scheduler import Slot
    from mailbot.store import Store


class Exit(enum.IntEnum):
    """sysexits.h codes, which MTAs understand for pipe transports."""

    OK = 0
    ERROR = 1
    USAGE = 64
    DATAERR = 65
    NOINPUT = 66
    SOFTWARE = 70
    OSERR = 71  # as sendmail: the port to listen on cannot be bound
    CANTCREAT = 73
    TEMPFAIL = 75
    CONFIG = 78


class CommandError(Exception):
    def __init__(self, message: str, code: Exit = Exit.ERROR) -> None:
        super().__init__(message)
        self.code = code


def _setup_logging(level: str, verbose: bool = False) -> None:
    import logging  # not at the top: `ingest` beside `serve` logs nothing

    logging.basicConfig(
        level=logging.DEBUG if verbose else getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # aiosmtpd logs every SMTP command at INFO; our pipeline logs one line per message.
    logging.getLogger("mail.log").setLevel(logging.WARNING)


def _runtime(config: Config, *, scheduled: bool = False) -> Runtime:
    from mailbot.runtime import build_runtime

    try:
        return build_runtime(config, scheduled=scheduled)
    except OSError as exc:
        raise _storage_error(config, exc) from None


def _store(config: Config) -> Store:
    """The store alone, for commands that only read incidents: the Runtime would also
    load the templates, the rules and the parsers, which they never use."""
    from mailbot.store import Store

    try:
        return Store(config.storage.db_dir)
    except OSError as exc:
        raise _storage_error(config, exc) from None


def _storage_error(config: Config, exc: OSError) -> CommandError:
    where = f" ({exc.filename})" if exc.filename else ""
    return CommandError(f"[storage] dir: cannot open {config.storage.dir}{where}: "
                        f"{exc.strerror or exc}", Exit.CANTCREAT)


def _parse_ref(ref: str, prefix: str) -> int:
    text = ref.strip().upper()
    if text.startswith(prefix + "-"):
        text = text[len(prefix) + 1:]
    if not text.isdigit():
        raise CommandError(f"{ref!r} is not an incident reference like {prefix}-42", Exit.USAGE)
    return int(text)


# ---------------------------------------------------------------- commands


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    from mailbot.daemon import Daemon, ListenError, StartupError, ThreadDied

    _setup_logging(config.log_level, args.verbose)
    rt = _runtime(config, scheduled=True)
    try:
        Daemon(rt).run_forever()
    except ListenError as exc:
        raise CommandError(str(exc), Exit.OSERR) from None
    except StartupError as exc:  # another mailbot holds the storage: try again later
        raise CommandError(str(exc), Exit.TEMPFAIL) from None
    except ThreadDied as exc:
        # Non-zero, so that systemd's Restart=on-failure starts the daemon again.
        raise CommandError(str(exc), Exit.SOFTWARE) from None
    return Exit.OK


def cmd_ingest(args: argparse.Namespace) -> int:
    """Spool the messages durably, then process them unless another process holds the
    writer lock. An MTA runs this once per message, so while `serve` holds the lock the
    process reads the config file for `[storage] dir` and spools, nothing more: `serve`
    has the whole configuration loaded and checked, and processes the message with it.
    The Runtime (templates, store, rules, parsing) is built only by the process that will
    process."""
    from mailbot.configfile import ConfigError, StorageFolders, config_path, storage_dir
    from mailbot.ingress.pipe import InputError, read_inputs
    from mailbot.lock import WriterLock

    try:
        messages = read_inputs(args.files)
    except InputError as exc:
        raise CommandError(str(exc), Exit.NOINPUT) from None
    path = config_path(args.config)
    where = storage_dir(path)
    if where is None:  # no file, or no usable [storage] dir: load_config says which
        return _ingest_and_process(args, _load_config(path), messages)
    folders = StorageFolders(where)
    lock = WriterLock(folders.lock_file)
    try:
        held = lock.acquire()
    except OSError:  # cannot even make the lock: the whole path says why, in one line
        return _ingest_and_process(args, _load_config(path), messages)
    if held:
        try:
            config = _load_config(path)
        except BaseException:
            lock.release()
            raise
        return _ingest_and_process(args, config, messages, lock)
    # `serve` (or another one-shot command) holds the lock and will process the spool.
    _spool_messages(_spool_at(where), messages)
    if not lock.acquire():
        print(f"mailbot: {len(messages)} message(s) spooled; the process holding the "
              f"writer lock (pid {lock.holder() or '?'}) will process them", file=sys.stderr)
        return Exit.OK
    # The holder let go after this process looked: it may have taken its last listing
    # before these messages arrived, so process them here.
    lock.release()
    try:
        config = _load_config(path)
        _setup_logging(config.log_level, args.verbose)
        rt = _runtime(config)
    except (CommandError, ConfigError) as exc:
        print(f"mailbot: spooled, processing deferred: {exc}", file=sys.stderr)
        return Exit.OK
    from mailbot.oneshot import process_spool

    process_spool(rt)
    return Exit.OK


def _load_config(path: Path) -> Config:
    from mailbot.config import load_config

    return load_config(path)


def _spool_at(storage: Path) -> Any:
    """The spool under `storage`, for a process that does not hold the writer lock."""
    from mailbot.configfile import StorageFolders
    from mailbot.ingress.pipe import open_spool

    try:
        return open_spool(StorageFolders(storage).spool_dir)
    except OSError as exc:
        raise CommandError(f"[storage] dir: cannot open {storage}: {exc.strerror or exc}",
                           Exit.CANTCREAT) from None


def _ingest_and_process(args: argparse.Namespace, config: Config,
                        messages: list[tuple[str, bytes]], lock: Any = None) -> int:
    """Nobody else processes: build everything before spooling, so a broken store or
    install spools nothing it could never process (75, the MTA keeps the message).
    `lock`: the writer lock, if this process holds it already."""
    from mailbot.lock import WriterLock
    from mailbot.oneshot import process_and_deliver_held, process_spool

    _setup_logging(config.log_level, args.verbose)
    if lock is None:
        lock = WriterLock(config.storage.lock_file)
        try:
            held = lock.acquire()
        except OSError as exc:
            raise _storage_error(config, exc) from None
        if not held:  # taken since this process looked: spool for the holder
            _spool_messages(_spool_at(config.storage.dir), messages)
            return Exit.OK
    try:
        rt = _runtime(config)
        _spool_messages(rt.spool, messages)
        process_and_deliver_held(rt)
    finally:
        lock.release()
    process_spool(rt)  # what others spooled while this process held the lock
    return Exit.OK


def _spool_messages(spool: Any, messages: list[tuple[str, bytes]]) -> None:
    from mailbot.ingress.pipe import spool_inputs

    try:
        spool_inputs(spool, messages)
    except OSError as exc:
        # EX_TEMPFAIL: the MTA keeps the message and tries again later.
        where = f" ({exc.filename})" if exc.filename else ""
        raise CommandError(f"cannot spool{where}: {exc.strerror or exc}",
                           Exit.TEMPFAIL) from None


def cmd_tick(args: argparse.Namespace, config: Config) -> int:
    """What `serve` does on its own, once: for setups without it (mail fed by `ingest`),
    run every minute by systemd/mailbot-tick.timer or cron."""
    import logging

    from mailbot.oneshot import process_spool

    _setup_logging(config.log_level, args.verbose)
    log = logging.getLogger("mailbot.tick")
    rt = _runtime(config, scheduled=True)
    assert rt.scheduler is not None  # scheduled=True builds it
    if not rt.take_lock():
        log.info("pid %s holds the writer lock; nothing done: `serve` does all this itself, "
                 "and what is due waits for the next tick if it is a one-shot command",
                 rt.lock.holder() or "?")
        return Exit.OK
    try:
        rt.pipeline.recover()
        rt.pipeline.process_pending()  # anything an interrupted ingest left in the spool
        ran = rt.scheduler.run_due()  # the digest, reminders: each slot once
        delivered, _ = rt.outbox.deliver_due()  # theirs, and retries that are due
    finally:
        rt.lock.release()
    process_spool(rt)
    log.info("ran %s; delivered %d mail(s); %d waiting in the outbox",
             ", ".join(ran) or "nothing due", delivered, len(rt.outbox.queued()))
    return Exit.OK


def cmd_check(args: argparse.Namespace, config: Config) -> int:
    from mailbot.check import explain

    try:
        raw = Path(args.file).read_bytes() if args.file != "-" else sys.stdin.buffer.read()
    except OSError as exc:
        raise CommandError(f"{args.file}: {exc.strerror}", Exit.NOINPUT) from None
    rt = _runtime(config)
    print(explain(rt, raw, show_mail=args.show_mail), end="")
    return Exit.OK


def cmd_incidents(args: argparse.Namespace, config: Config) -> int:
    import json

    store = _store(config)
    items = (sorted(store.all_incidents(), key=lambda i: i.id) if args.all
             else store.live_incidents())
    prefix = config.list.incident_prefix
    if args.json:
        json.dump([i.public_dict(prefix) for i in items], sys.stdout, indent=2, default=str)
        print()
        return Exit.OK
    if not items:
        print("no incidents" if args.all else "no open incidents (--all lists closed ones)")
        return Exit.OK
    from mailbot.formatting import fit_person

    print(f"{'ID':<10} {'STATUS':<9} {'SEV':<5} {'PHASE':<14} {'COMMANDER':<28} TITLE")
    for i in items:
        flag = " [no liaison]" if i.needs_liaison and i.status != "closed" else ""
        print(f"{i.ref(prefix):<10} {i.status:<9} {i.severity or '-':<5} {i.phase or '-':<14} "
              f"{fit_person(i.commander or '-', 28):<28} {i.title}{flag}")
    return Exit.OK


def cmd_show(args: argparse.Namespace, config: Config) -> int:
    import json

    prefix = config.list.incident_prefix
    incident_id = _parse_ref(args.ref, prefix)
    incident = _store(config).get(incident_id)
    if incident is None:
        raise CommandError(f"no incident {prefix}-{incident_id}", Exit.DATAERR)
    if args.json:
        json.dump(incident.public_dict(prefix), sys.stdout, indent=2, default=str)
        print()
        return Exit.OK
    from mailbot.compose import make_environment

    env = make_environment(config.templates_dir, config.storage.template_cache_dir)
    print(env.get_template("cli/show.txt").render(
        incident=incident, ref=incident.ref(prefix), tz=config.schedule.tz), end="")
    return Exit.OK


def cmd_oncall(args: argparse.Namespace, config: Config) -> int:
    import datetime as dt
    import json

    from mailbot.compose import make_environment
    from mailbot.oncall import on_call_at
    from mailbot.services import load_services

    directory = load_services(config.services_file)
    tz = config.schedule.tz
    at = dt.datetime.now(dt.timezone.utc)
    if args.at:
        try:
            at = dt.datetime.fromisoformat(args.at.strip())
        except ValueError:
            raise CommandError(f"--at {args.at!r}: not a date and time (2026-12-24 10:00, "
                               f"in [schedule] timezone {config.schedule.timezone}, or "
                               "with an offset: 2026-12-24T10:00+01:00)", Exit.USAGE) from None
        at = (at if at.tzinfo else at.replace(tzinfo=tz)).astimezone(dt.timezone.utc)
    names = None
    if args.service:
        if directory.resolve(args.service) is None:
            raise CommandError(f"no service {args.service!r} in {config.services_file}",
                               Exit.DATAERR)
        names = [args.service]
    entries = on_call_at(directory, at, names, weeks=args.weeks)
    if args.json:
        json.dump({"at": at.isoformat(), "services": [e.to_json() for e in entries]},
                  sys.stdout, indent=2)
        print()
        return Exit.OK
    env = make_environment(config.templates_dir)
    print(env.get_template("cli/oncall.txt").render(entries=entries, at=at, tz=tz), end="")
    return Exit.OK


def cmd_failed(args: argparse.Namespace) -> int:
    """Reads `[storage] dir` alone, as `ingest` beside `serve` does: it is wanted most
    when something is broken, the configuration included."""
    from mailbot.configfile import config_path, storage_dir

    path = config_path(args.config)
    where = storage_dir(path)
    if where is None:  # no file, or no usable [storage] dir: load_config says which
        where = _load_config(path).storage.dir
    spool = _spool_at(where)
    names = spool.failed_names()
    if not names:
        print("no failed messages")
    for name in names:
        reason = spool.failure_reason(name).strip().splitlines()
        print(f"{name}  {reason[-1] if reason else ''}")
    _say_waiting(spool.pending())
    return Exit.OK


def _say_waiting(pending: list[str]) -> None:
    """Accepted mail not processed yet (serve stopped, its config broken since): the
    operator sees it here and in `check-config`, not only by listing spool/new."""
    if pending:
        print(f"{len(pending)} message(s) accepted and waiting in the spool, not processed "
              "yet: `serve` or `mailbot tick` processes them")


def cmd_retry(args: argparse.Namespace, config: Config) -> int:
    from mailbot.oneshot import process_spool

    rt = _runtime(config)
    names = rt.spool.failed_names() if args.all else args.names
    if args.all and not names:
        print("nothing in failed/: no message to retry")
        return Exit.OK  # a cron job's `retry --all` with nothing to do is not an error
    if not names:
        raise CommandError("name failed messages (see `mailbot failed`) or use --all", Exit.USAGE)
    for name in names:
        if name not in rt.spool.failed_names():
            raise CommandError(f"{name}: not in failed/", Exit.NOINPUT)
        rt.spool.retry(name)
        print(f"{name}: back in the spool")
    if rt.take_lock():
        try:
            _setup_logging(config.log_level, args.verbose)
            rt.pipeline.process_pending()
            rt.outbox.deliver_due()
        finally:
            rt.lock.release()
        process_spool(rt)
    return Exit.OK


def cmd_outbox(args: argparse.Namespace, config: Config) -> int:
    rt = _runtime(config)
    if args.action == "resend":
        if not args.names:
            raise CommandError("name the parked mail(s) to re-send", Exit.USAGE)
        for name in args.names:
            if name not in rt.outbox.parked_names():
                raise CommandError(f"{name}: not parked", Exit.NOINPUT)
            rt.outbox.resend(name)
            print(f"{name}: queued again")
        return Exit.OK
    queued, parked = rt.outbox.queued(), rt.outbox.parked_names()
    print(f"{len(queued)} queued, {len(parked)} parked")
    for name in queued:
        print(f"queued  {name}")
    for name in parked:
        print(f"parked  {name}  {rt.outbox.parked_reason(name)}")
    return Exit.OK


def check_storage(config: Config) -> None:
    """CommandError (EX_CANTCREAT) unless storage can be created and every folder in it
    written: a wrong path or owner is found by `check-config`, not by the first mail."""
    _runtime(config).close()  # creates whatever is missing, as every command would
    root = Path(config.storage.dir)
    # Two levels (spool/new, outbox/queue, archive/2026-11, ...): not every archived file.
    first = [p for p in root.iterdir() if p.is_dir()]
    second = [q for p in first for q in p.iterdir() if q.is_dir()]
    for folder in [root, *first, *second]:
        probe = folder / f".check-config.{os.getpid()}"
        try:
            with open(probe, "wb") as fh:
                fh.write(b"mailbot check-config\n")
                os.fsync(fh.fileno())
        except OSError as exc:
            raise CommandError(f"[storage] dir: cannot write in {folder}: "
                               f"{exc.strerror or exc}", Exit.CANTCREAT) from None
        finally:
            try:
                probe.unlink(missing_ok=True)
            except OSError:
                pass  # a read-only file system: the write above has said so already


def cmd_check_config(args: argparse.Namespace, config: Config) -> int:
    from mailbot.config import REQUIRED_TEMPLATES
    from mailbot.services import load_services

    load_services(config.services_file)  # validates services.toml; raises ConfigError
    if config.imap is not None and (config.imap.password_file or config.imap.password_env):
        config.imap.password()
    if config.outbound.password_file or config.outbound.password_env:
        config.outbound.password()
    import jinja2

    from mailbot.compose import make_environment

    # Through the compiled-template cache: an entry is found only for the very source
    # that compiled before (keyed by its checksum), so an edited template is compiled.
    env = make_environment(config.templates_dir, config.storage.template_cache_dir)
    # load_config found them all; a folder changed since must not pass.
    missing = [t for t in REQUIRED_TEMPLATES if t not in env.list_templates()]
    if missing:
        raise CommandError(f"templates missing in {config.templates_dir}: {', '.join(missing)}",
                           Exit.CONFIG)
    from mailbot.publish import site_template_environment

    site_env = site_template_environment(config)
    for name in env.list_templates(extensions=["txt", "html", "css", "js"]):
        try:
            (site_env if name.startswith("site/") else env).get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise CommandError(f"template {name} line {exc.lineno}{where}: {exc.message}",
                               Exit.CONFIG) from None
    check_storage(config)
    print(f"{config.path}: OK (storage {config.storage.dir}, templates {config.templates_dir})")
    _say_waiting(_spool_at(config.storage.dir).pending())
    if not config.services_file.exists():
        # Allowed (an empty directory), but most likely a wrong path: say so.
        print(f"note: {config.services_file} does not exist: no experts will be listed "
              "in acknowledgements, digests or on the site")
    return Exit.OK


def cmd_init_config(args: argparse.Namespace) -> int:
    """Write the sample configuration (mailbot.toml, services.toml) into a folder."""
    import shutil

    from mailbot.config import package_data

    out = Path(args.dir)
    sample = package_data("sample_config")
    names = ("mailbot.toml", "services.toml")
    existing = [str(out / n) for n in names if (out / n).exists()]
    if existing:
        verb = "exists" if len(existing) == 1 else "exist"
        raise CommandError(f"{', '.join(existing)} {verb} already; not overwritten",
                           Exit.CANTCREAT)
    try:
        if not out.exists():
            out.mkdir(parents=True)
            os.chmod(out, 0o750)  # configuration, not state: readable by mailbot's group
        for name in names:
            shutil.copyfile(sample / name, out / name)
            os.chmod(out / name, 0o640)
    except OSError as exc:
        raise CommandError(f"{out}: {exc.strerror or exc}", Exit.CANTCREAT) from None
    print(f"wrote {out / names[0]} and {out / names[1]}; data will go to {out / 'var'} "
          f"([storage] dir). Check it with: mailbot check-config --config {out / names[0]}")
    return Exit.OK


def cmd_digest(args: argparse.Namespace, config: Config) -> int:
    from mailbot.oneshot import process_spool

    rt = _runtime(config)
    code = run_digest_command(rt, send=args.send)
    if args.send:
        process_spool(rt)  # it held the writer lock while it sent
    return code


def text_of(mail: OutgoingMail) -> str:
    """Subject and text part of a rendered mail, for the terminal."""
    import email
    import email.policy

    msg = email.message_from_bytes(mail.message, policy=email.policy.default)
    body = msg.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    # The wire form has CRLF line ends; a terminal wants LF.
    return f"Subject: {msg['Subject']}\n\n{text}".replace("\r\n", "\n")


def _report_serve_holds_digest(rt: Runtime, slot: Slot, now: dt.datetime) -> int:
    """`digest --send` while `serve` holds the writer lock: say what serve did or will do
    about today's digest (read from the store, which needs no lock)."""
    config = rt.config
    at = f"{config.schedule.digest_time.strftime('%H:%M')} {config.schedule.timezone}"
    serve = f"`mailbot serve` is running (pid {rt.lock.holder() or '?'})"
    day = slot.key.rsplit(":", 1)[1]
    if rt.store.is_processed(slot.key):
        print(f"mailbot: not sent: {serve} and already handled today's digest ({day}); "
              f"the next is due tomorrow at {at}", file=sys.stderr)
        return 0
    when = f"at {at}" if now < slot.due else f"on its next tick (it was due at {at})"
    print(f"mailbot: not sent: {serve} and sends today's digest itself {when}",
          file=sys.stderr)
    return 75  # EX_TEMPFAIL


def run_digest_command(rt: Runtime, send: bool) -> int:
    """`mailbot digest [--send]`: print today's digest, or send it once for today."""
    from mailbot.compose import mail_name
    from mailbot.digest import collect_digest, compose_digest, send_digest, today_slot

    now = rt.clock.now()
    config = rt.config
    slot = today_slot(config, now)
    if not send:
        view = collect_digest(rt, now)
        sys.stdout.write(text_of(compose_digest(rt, view, slot.key)))
        return 0
    if not rt.take_lock():
        return _report_serve_holds_digest(rt, slot, now)
    try:
        rt.pipeline.recover()
        with rt.pipeline.lock:
            if rt.store.is_processed(slot.key):
                day = slot.key.rsplit(":", 1)[1]
                rt.outbox.deliver_due()
                if mail_name(slot.key, "digest") in rt.outbox.queued():
                    print(f"digest for {day} is queued, and the relay did not take it yet "
                          "(see `mailbot outbox`; the next run retries)")
                    return 75
                print(f"digest for {day} already sent; not sent again")
                return 0
            mail = send_digest(rt, slot, now)
        if mail is None:
            print("nothing to report; no digest sent (digest_when_empty = false)")
            return 0
        rt.outbox.deliver_due()
        if mail.name in rt.outbox.queued():
            print(f"digest queued as {mail.name}; the relay did not take it yet "
                  "(see `mailbot outbox`; the next run retries)")
            return 75
        print(f"digest sent to {config.list.address}")
        return 0
    finally:
        rt.lock.release()


def cmd_publish(args: argparse.Namespace, config: Config) -> int:
    from mailbot.publish import publish_site

    rt = _runtime(config)
    out = Path(args.out) if args.out else config.publish.dir
    if out is None:
        raise CommandError("say where: --out DIR (or set [publish] dir)", Exit.USAGE)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"{out}: {exc.strerror}", Exit.CANTCREAT) from None
    paths = publish_site(out, rt.store.all_incidents(), rt.directory, config, rt.clock.now())
    print(f"wrote {len(paths)} page(s) to {out}; open {out / 'index.html'}")
    return Exit.OK


# ---------------------------------------------------------------- parser


def _common_options(after_command: bool) -> argparse.ArgumentParser:
    """--config, -v and --debug, accepted before and after the command. After it, they
    have no default: a subparser's default would overwrite the value given before the
    command, and `mailbot --config X incidents` would read config/mailbot.toml."""
    unset: dict[str, Any] = {"default": argparse.SUPPRESS} if after_command else {}
    common = argparse.ArgumentParser(add_help=False, formatter_class=_Formatter)
    common.add_argument("--config", metavar="PATH", **unset,
                        help="configuration file (default: $MAILBOT_CONFIG, else "
                             "config/mailbot.toml)")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging", **unset)
    common.add_argument("--debug", action="store_true", help="show tracebacks", **unset)
    return common


class _Formatter(argparse.HelpFormatter):
    """argparse's, with the terminal width read here: argparse imports shutil for it
    (with bz2 and lzma) while building every parser, help asked for or not."""

    def __init__(self, prog: str) -> None:
        try:
            columns = int(os.environ["COLUMNS"])
        except (KeyError, ValueError):
            try:
                columns = os.get_terminal_size(sys.__stdout__.fileno()).columns \
                    if sys.__stdout__ is not None else 80
            except (ValueError, OSError):
                columns = 80
        super().__init__(prog, width=columns - 2)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits EX_USAGE (64) like every other error here
    follows sysexits.h, not argparse's own 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(Exit.USAGE, f"{self.prog}: error: {message}\n")


class _Unbuilt:
    """Stands for the subparser of a command that is not on this command line: takes
    whatever build_parser does to a subparser, and keeps nothing."""

    def __getattr__(self, name: str) -> Callable[..., "_Unbuilt"]:
        return lambda *args, **kwargs: self


def _command_in(argv: list[str]) -> str | None:
    """The command word of `argv`: the first word that is neither an option nor the
    value of --config."""
    value_next = False
    for arg in argv:
        if value_next:
            value_next = False
        elif arg == "--config":
            value_next = True
        elif not arg.startswith("-"):
            return arg
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line. With `command`, only that command's subparser is built: argparse
    spends about half a millisecond on each (mostly looking for translations), and an
    MTA starts `mailbot ingest` once per message."""
    parser = _Parser(prog="mailbot", parents=[_common_options(False)],
                     description="An incident mailing-list daemon.")
    parser.add_argument("--version", action="version", version=f"mailbot {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    common = _common_options(True)

    def add(name: str, func: Callable[..., int], help: str) -> Any:
        if command is not None and name != command:
            return _Unbuilt()
        # typeshed wants parents of the subparsers' class (_Parser); argparse takes any
        p = sub.add_parser(name, parents=[common],  # type: ignore[list-item]
                           help=help, description=help)
        p.set_defaults(func=func)
        return p

    add("serve", cmd_serve, "run the daemon: ingress, outbox and scheduler")
    p = add("ingest", cmd_ingest, "process messages given as files, or - for stdin")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(needs_config=False)  # it reads the file itself: see cmd_ingest
    p = add("check", cmd_check, "dry run: how a message is read and what mailbot would do")
    p.add_argument("file", metavar="FILE.eml")
    p.add_argument("--show-mail", action="store_true", help="print the mail it would send")
    p = add("incidents", cmd_incidents, "list open incidents (--all: with closed ones)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--all", action="store_true")
    p = add("show", cmd_show, "one incident with its timeline")
    p.add_argument("ref", metavar="INC-n")
    p.add_argument("--json", action="store_true")
    p = add("oncall", cmd_oncall, "who is on call now (or --at TIME) and next, per service")
    p.add_argument("service", nargs="?", metavar="SERVICE")
    p.add_argument("--at", metavar="TIME", help="a local date and time ([schedule] "
                   "timezone) or ISO 8601 with an offset")
    p.add_argument("--weeks", type=int, default=1, help="with --json: this many shifts")
    p.add_argument("--json", action="store_true")
    p = add("digest", cmd_digest, "print the daily digest, or --send it now")
    p.add_argument("--send", action="store_true")
    p = add("publish", cmd_publish, "write the static HTML site")
    p.add_argument("--out", metavar="DIR")
    add("tick", cmd_tick, "once: process the spool, send what is due (digest, reminders), "
                          "retry queued mail; for setups without serve")
    add("check-config", cmd_check_config,
        "validate the configuration, the templates, and that storage can be written")
    p = add("init-config", cmd_init_config,
            "write the sample mailbot.toml and services.toml into DIR, to start from")
    p.add_argument("dir", metavar="DIR")
    p.set_defaults(needs_config=False)
    p = add("failed", cmd_failed, "list messages whose processing failed, and how many wait")
    p.set_defaults(needs_config=False)  # reads [storage] dir alone: see cmd_failed
    p = add("retry", cmd_retry, "put failed messages back in the spool and process them")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--all", action="store_true")
    p = add("outbox", cmd_outbox, "list queued and parked mail, or re-send parked mail")
    p.add_argument("action", nargs="?", choices=["list", "resend"], default="list")
    p.add_argument("names", nargs="*", metavar="NAME")
    if command is not None and command not in sub.choices:
        return build_parser()  # not a command: the whole parser says so, listing them
    return parser


def main(argv: list[str] | None = None) -> int:
    from mailbot.durable import STATE_UMASK

    os.umask(STATE_UMASK)  # before anything is created: see durable.FILE_MODE
    argv = sys.argv[1:] if argv is None else argv
    try:
        return _run(argv)
    except SystemExit as exc:
        # An MTA turns 64 into a hard bounce: a typo in the pipe command must not bounce
        # every declaration (argparse exits here before the command is known).
        if exc.code == Exit.USAGE and "ingest" in argv:
            return Exit.TEMPFAIL
        raise


def _run(argv: list[str]) -> int:
    parser = build_parser(_command_in(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return Exit.USAGE
    code = _dispatch(args)
    if args.func is cmd_ingest and code not in (Exit.OK, Exit.NOINPUT):
        # Nothing the pipe path can fail on is the message's fault (a broken message is
        # stored and answered, or kept in failed/): a missing config, storage that cannot
        # be written, a broken install, a bug. EX_TEMPFAIL makes the MTA keep the message
        # and retry, where 78 or 73 would bounce it (Postfix: dsn=5.3.5, 5.2.0).
        return Exit.TEMPFAIL
    return code


def _dispatch(args: argparse.Namespace) -> int:
    try:
        if not getattr(args, "needs_config", True):
            return int(args.func(args))
        from mailbot.config import load_config

        config = load_config(args.config)
        return int(args.func(args, config))
    except ConfigError as exc:
        print(f"mailbot: config: {exc}", file=sys.stderr)
        return Exit.CONFIG
    except CommandError as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return Exit.ERROR
    except BrokenPipeError:
        # `mailbot incidents | head`: the reader has what it wanted. Quiet, and no second
        # error when the interpreter flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return Exit.OK
    except Exception as exc:
        if args.debug:
            raise
        print(f"mailbot: internal error: {type(exc).__name__}: {exc} (run with --debug for "
              "the traceback)", file=sys.stderr)
        return Exit.SOFTWARE
