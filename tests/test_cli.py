"""`mailbot ingest`, failed messages and their re-run, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailbot.runtime import build_runtime
from tests.support import DECLARATION_BODY, REPO, free_port, load, message, write_config


def run(*args: str, stdin: bytes | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailbot", *args], input=stdin,
                          capture_output=True, cwd=cwd, timeout=120)


def test_ingest_files_and_stdin_then_show(tmp_path):
    cfg = write_config(tmp_path, smtp_port=free_port())
    eml = tmp_path / "d.eml"
    eml.write_bytes(message("[DECLARE] from a file", DECLARATION_BODY, message_id="p1@x"))
    assert run("ingest", str(eml), "--config", str(cfg)).returncode == 0
    follow = message("Re: [INC-1] from a file",
                     "Severity: SEV1\nPhase: mitigating\nCommander: bob@example.com\n\nRolled back.",
                     message_id="p2@x")
    assert run("ingest", "-", "--config", str(cfg), stdin=follow).returncode == 0
    shown = json.loads(run("show", "INC-1", "--json", "--config", str(cfg)).stdout)
    assert shown["severity"] == "SEV1" and shown["phase"] == "mitigating"
    assert shown["commander"] == "bob@example.com"
    kinds = [e["kind"] for e in shown["timeline"]]
    assert kinds == ["declared", "updated"]
    change = {c[0]: (c[1], c[2]) for c in shown["timeline"][1]["changes"]}
    assert change["severity"] == ("SEV2", "SEV1")
    sent = list((tmp_path / "var" / "outbox-sent" / "new").iterdir())
    assert len(sent) == 2  # two acknowledgements, read from the Maildir
    # A clean run left nothing to recover: the next run must not say it recovered.
    again = run("ingest", str(eml), "--config", str(cfg))
    assert again.returncode == 0 and b"recovered" not in again.stderr, again.stderr


def test_ingest_unreadable_file_is_one_line_and_stores_nothing(tmp_path):
    cfg = write_config(tmp_path, smtp_port=free_port())
    good = tmp_path / "good.eml"
    good.write_bytes(message("[DECLARE] x", DECLARATION_BODY, message_id="g@x"))
    out = run("ingest", str(good), str(tmp_path / "missing.eml"), "--config", str(cfg))
    assert out.returncode == 66
    assert out.stderr.decode().strip().count("\n") == 0 and b"missing.eml" in out.stderr
    assert not (tmp_path / "var" / "spool" / "new").exists() or \
        not list((tmp_path / "var" / "spool" / "new").iterdir())


def test_ingest_when_spool_cannot_be_written_asks_mta_to_retry(tmp_path):
    if os.geteuid() == 0:
        # root ignores permissions: make the spool path a file instead.
        cfg = write_config(tmp_path, smtp_port=free_port())
        (tmp_path / "var").mkdir()
        (tmp_path / "var" / "spool").mkdir()
        (tmp_path / "var" / "spool" / "new").write_text("not a directory")
    else:  # pragma: no cover
        cfg = write_config(tmp_path, smtp_port=free_port())
        (tmp_path / "var").mkdir(mode=0o500)
    eml = tmp_path / "d.eml"
    eml.write_bytes(message("[DECLARE] x", DECLARATION_BODY, message_id="t@x"))
    out = run("ingest", str(eml), "--config", str(cfg))
    assert out.returncode == 75, out.stderr  # 73 is a hard bounce (Postfix: dsn=5.2.0)
    assert b"Traceback" not in out.stderr
    checked = run("check-config", "--config", str(cfg))
    assert checked.returncode == 73 and b"spool" in checked.stderr, checked.stderr
    assert checked.stderr.count(b"\n") == 1


# ---------------------------------------------------------------- operator mistakes never bounce


CONFIG_MISTAKES = ("bad key", "bad services", "templates dir")


def break_config(cfg: Path, mistake: str) -> None:
    """Write one of CONFIG_MISTAKES into the config file `cfg`."""
    if mistake == "bad key":
        cfg.write_text(cfg.read_text() + "\n[bogus]\nx = 1\n")
    elif mistake == "bad services":
        services = cfg.parent / "services.toml"
        services.write_text("[[service]\n")
        cfg.write_text(cfg.read_text().replace(str(REPO / "config" / "services.toml"),
                                               str(services)))
    else:
        cfg.write_text(cfg.read_text() + f'\n[templates]\ndir = "{cfg.parent / "nope"}"\n')


@pytest.mark.parametrize("mistake", ["no config", "bad key", "bad services", "templates dir",
                                     "storage under a file", "usage"])
def test_ingest_defers_whatever_the_operator_got_wrong(tmp_path, mistake):
    """Postfix bounces mail on 64, 73 and 78: ingest says 75 for everything that is not
    the message's fault, and keeps nothing it could not process."""
    cfg = write_config(tmp_path, smtp_port=free_port())
    args = ["ingest", "-", "--config", str(cfg)]
    if mistake == "no config":
        args[-1] = str(tmp_path / "typo.toml")
    elif mistake in CONFIG_MISTAKES:
        break_config(cfg, mistake)
    elif mistake == "storage under a file":
        (tmp_path / "var").write_text("a file where the storage folder should be")
    elif mistake == "usage":
        args.insert(1, "--no-such-option")
    declaration = message("[DECLARE] x", DECLARATION_BODY, message_id="op@x")
    out = run(*args, stdin=declaration)
    assert out.returncode == 75, (out.returncode, out.stderr)
    assert b"Traceback" not in out.stderr
    spool = tmp_path / "var" / "spool" / "new"
    assert not spool.is_dir() or not list(spool.iterdir())
    if mistake != "usage":  # the same mistake outside the pipe keeps its own code
        other = run("check-config", *args[2:])
        assert other.returncode in (73, 78), other.stderr


# ---------------------------------------------------------------- one process per message

# What an MTA's `mailbot ingest` must not load while `serve` does the processing: the
# Runtime and everything it builds (templates, store, rules, parsing, outbox) and their
# libraries. Each costs the one-message process more than the spooling itself.
HEAVY = ("mailbot.runtime", "mailbot.compose", "mailbot.store", "mailbot.models",
         "mailbot.pipeline", "mailbot.planning", "mailbot.outbox", "mailbot.parsing",
         "mailbot.rules", "mailbot.wire", "jinja2", "mailparser", "tinydb", "flufl.bounce",
         "aiosmtpd", "imapclient", "ctypes", "subprocess", "importlib.resources",
         # The serve process has the configuration loaded: the spooler reads [storage] dir
         # from the file (configfile.py) and builds none of the sections, nor logs.
         "mailbot.config", "mailbot.services", "mailbot.rotation", "dataclasses", "zoneinfo",
         "logging", "json", "shutil")


def imported_by(args: list[str], stdin: bytes) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run mailbot under `-X importtime` and read which modules the process imported."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "mailbot", *args],
                         input=stdin, capture_output=True, cwd=REPO, timeout=120)
    names = {line.rsplit("|", 1)[1].strip() for line in out.stderr.decode().splitlines()
             if line.startswith("import time:") and "|" in line}
    return out, names


def test_ingest_beside_a_running_daemon_spools_without_loading_the_processing(tmp_path):
    from mailbot.lock import WriterLock

    cfg = write_config(tmp_path, smtp_port=free_port())
    args = ["ingest", "-", "--config", str(cfg)]
    # Control: with nobody holding the lock the same probe sees the processing half load.
    _, alone = imported_by(args, message("[DECLARE] alone", DECLARATION_BODY,
                                         message_id="cold0@x"))
    assert {"mailbot.runtime", "jinja2", "mailparser", "tinydb"} <= alone
    lock = WriterLock(tmp_path / "var" / "mailbot.lock")
    assert lock.acquire()  # held by this process, as `serve` holds it
    try:
        out, names = imported_by(args, message("[DECLARE] beside serve", DECLARATION_BODY,
                                               message_id="cold1@x"))
    finally:
        lock.release()
    assert out.returncode == 0, out.stderr
    assert b"writer lock" in out.stderr  # says who will process it
    loaded = sorted(n for n in names for heavy in HEAVY
                    if n == heavy or n.startswith(heavy + "."))
    assert loaded == []
    spooled = [p for p in (tmp_path / "var" / "spool" / "new").iterdir()
               if not p.name.startswith(".")]
    assert len(spooled) == 1 and b"cold1@x" in spooled[0].read_bytes()


@pytest.mark.parametrize("mistake", CONFIG_MISTAKES)
def test_a_config_broken_since_serve_started_does_not_stop_the_mail(tmp_path, mistake):
    """`serve` holds the whole configuration it started with, checked: a mistake made in
    the file since (found by `check-config`, or at the next start) must not defer every
    message while the daemon could process it. The pipe spools, and `serve` answers."""
    from tests.support import DaemonProcess, SmtpSink

    sink = SmtpSink().start()
    port = free_port()
    cfg = write_config(tmp_path, smtp_port=port, relay_port=sink.port)
    daemon = DaemonProcess(cfg, port).start()
    try:
        break_config(cfg, mistake)
        out = run("ingest", "-", "--config", str(cfg),
                  stdin=message("[DECLARE] while the file is broken", DECLARATION_BODY,
                                message_id="held@x"))
        assert out.returncode == 0, (out.returncode, out.stderr)
        assert b"writer lock" in out.stderr
        ack = sink.wait_count(1, timeout=20)[0]
        assert "<held@x>" in str(ack.message["In-Reply-To"]) and ack.kind == "ack"
    finally:
        daemon.terminate()
        sink.stop()
    # Without `serve`, the same mistake defers the message (75) and spools nothing.
    out = run("ingest", "-", "--config", str(cfg),
              stdin=message("[DECLARE] alone", DECLARATION_BODY, message_id="alone@x"))
    assert out.returncode == 75, (out.returncode, out.stderr)
    assert b"Traceback" not in out.stderr and out.stderr.count(b"\n") == 1
    assert not [p for p in (tmp_path / "var" / "spool" / "new").iterdir()
                if b"alone@x" in p.read_bytes()]


@pytest.mark.parametrize("mistake", ["invalid TOML", "config missing"])
def test_ingest_beside_a_running_daemon_defers_when_it_cannot_find_the_spool(tmp_path,
                                                                              mistake):
    """With no readable file there is no `[storage] dir` to spool into: 75, the MTA keeps
    the message and tries again."""
    from mailbot.lock import WriterLock

    cfg = write_config(tmp_path, smtp_port=free_port())
    lock = WriterLock(tmp_path / "var" / "mailbot.lock")
    assert lock.acquire()
    try:
        if mistake == "invalid TOML":
            cfg.write_text(cfg.read_text() + "\n[storage\n")
        else:
            cfg.unlink()
        out = run("ingest", "-", "--config", str(cfg),
                  stdin=message("[DECLARE] x", DECLARATION_BODY, message_id="held@x"))
    finally:
        lock.release()
    assert out.returncode == 75, (out.returncode, out.stderr)
    assert b"Traceback" not in out.stderr and out.stderr.count(b"\n") == 1
    spool = tmp_path / "var" / "spool" / "new"
    assert not spool.is_dir() or not list(spool.iterdir())


@pytest.mark.parametrize("command", [["ingest", "-"], ["tick"]])
def test_a_process_beside_the_lock_holder_leaves_its_spool_writes_alone(tmp_path, command):
    """spool/tmp/ holds writes in progress (an SMTP session's DATA, another pipe's
    message): only the lock holder, after a crash, may clear it."""
    from mailbot.lock import WriterLock

    cfg = write_config(tmp_path, smtp_port=free_port())
    tmp = tmp_path / "var" / "spool" / "tmp"
    tmp.mkdir(parents=True)
    writing = tmp / "in-progress"
    writing.write_bytes(b"half a message")
    lock = WriterLock(tmp_path / "var" / "mailbot.lock")
    assert lock.acquire()
    try:
        out = run(*command, "--config", str(cfg),
                  stdin=message("[DECLARE] x", DECLARATION_BODY, message_id="t@x"))
    finally:
        lock.release()
    assert out.returncode == 0, out.stderr
    assert writing.exists()
    # The holder's recovery clears what no live process is writing, and only that: a
    # name carries its writer's pid (STAMP.PID.N.SOURCE).
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    live = tmp / f"{'1' * 20}.{os.getpid()}.7.pipe"  # this test is still writing it
    left = tmp / f"{'1' * 20}.{dead}.7.pipe"  # its writer was killed
    live.write_bytes(b"half")
    left.write_bytes(b"half")
    assert run("tick", "--config", str(cfg)).returncode == 0
    assert live.exists()
    assert not left.exists() and not writing.exists()


@pytest.mark.parametrize("argv", [
    ["ingest", "-", "--config", "c.toml"], ["--config", "c.toml", "-v", "ingest", "a", "b"],
    ["serve"], ["check", "m.eml", "--show-mail"], ["incidents", "--json", "--all"],
    ["show", "INC-3", "--json"], ["digest", "--send"], ["publish", "--out", "site"],
    ["tick", "--debug"], ["check-config"], ["init-config", "etc"], ["failed"],
    ["retry", "--all"], ["outbox", "resend", "x", "y"], ["--config", "ingest", "show", "1"],
    ["oncall", "--at", "2026-11-30 10:00"],
])
def test_the_parser_built_for_one_command_reads_it_as_the_whole_parser_does(argv):
    from mailbot.cli import _command_in, build_parser

    assert vars(build_parser(_command_in(argv)).parse_args(argv)) == \
        vars(build_parser().parse_args(argv))


def test_usage_errors_outside_ingest_stay_64(tmp_path):
    assert run("incidents", "--no-such-option").returncode == 64


def test_check_config_finds_storage_it_cannot_create(tmp_path):
    cfg = write_config(tmp_path, smtp_port=free_port())
    (tmp_path / "var").write_text("a file where the storage folder should be")
    out = run("check-config", "--config", str(cfg))
    assert out.returncode == 73, out.stderr
    assert b"[storage] dir" in out.stderr and out.stderr.count(b"\n") == 1
    (tmp_path / "var").unlink()
    out = run("check-config", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "var" / "spool").is_dir()  # created, and nothing left behind in it
    assert not [p for p in (tmp_path / "var").rglob(".check-config*")]


def test_relative_paths_are_beside_the_config_file_not_the_working_directory(tmp_path):
    conf = tmp_path / "etc"
    conf.mkdir()
    cfg = write_config(conf, smtp_port=free_port())
    cfg.write_text(cfg.read_text().replace(f'dir = "{conf / "var"}"', 'dir = "data"'))
    home = tmp_path / "home"  # where a cron job runs
    home.mkdir()
    eml = home / "d.eml"
    eml.write_bytes(message("[DECLARE] from cron", DECLARATION_BODY, message_id="rel@x"))
    assert run("ingest", str(eml), "--config", str(cfg), cwd=home).returncode == 0
    assert (conf / "data" / "db" / "hot.json").exists()
    assert not (home / "data").exists()
    listed = json.loads(run("incidents", "--json", "--config", "etc/mailbot.toml",
                            cwd=tmp_path).stdout)
    assert [i["title"] for i in listed] == ["from cron"]


def test_version_is_the_package_version():
    from importlib.metadata import version

    out = run("--version")
    assert out.returncode == 0
    assert out.stdout.decode().strip() == f"mailbot {version('mailbot')}"


def test_a_port_in_use_is_one_line_and_a_sysexits_code(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = write_config(tmp_path, smtp_port=port)
        out = run("serve", "--config", str(cfg))
    err = out.stderr.decode()
    assert out.returncode == 71, err  # EX_OSERR, as sendmail says when it cannot bind
    assert err.count("address already in use") == 1 and err.count(str(port)) == 1, err
    assert "Traceback" not in err and err.strip().count("\n") == 0, err


def test_templates_dir_overrides_one_file_and_keeps_the_rest(tmp_path):
    mine = tmp_path / "tpl" / "mail"
    mine.mkdir(parents=True)
    original = (REPO / "templates" / "mail" / "ack.txt").read_text()
    (mine / "ack.txt").write_text(original.replace("{% block body %}",
                                                   "{% block body %}OUR OWN WORDING\n", 1))
    assert "OUR OWN WORDING" in (mine / "ack.txt").read_text()
    cfg = write_config(tmp_path, smtp_port=free_port(), extra='[templates]\ndir = "tpl"\n')
    assert run("check-config", "--config", str(cfg)).returncode == 0
    eml = tmp_path / "d.eml"
    eml.write_bytes(message("[DECLARE] own words", DECLARATION_BODY, message_id="tpl@x"))
    assert run("ingest", str(eml), "--config", str(cfg)).returncode == 0
    [ack] = (tmp_path / "var" / "outbox-sent" / "new").iterdir()
    assert b"OUR OWN WORDING" in ack.read_bytes()
    shown = run("show", "INC-1", "--config", str(cfg))  # cli/show.txt: the built-in one
    assert shown.returncode == 0 and b"own words" in shown.stdout


def test_a_message_that_breaks_processing_goes_to_failed_and_can_be_rerun(tmp_path):
    config = load(tmp_path, smtp_port=free_port())
    rt = build_runtime(config)
    original = rt.planner.evaluate

    def explode(mail, received):
        if "explode" in mail.subject:
            raise ValueError("boom in processing")
        return original(mail, received)

    rt.planner.evaluate = explode  # fault injection inside our own code, not a boundary
    rt.spool.put(message("[DECLARE] explode", DECLARATION_BODY, message_id="e1@x"), "pipe")
    rt.spool.put(message("[DECLARE] fine", DECLARATION_BODY, message_id="e2@x"), "pipe")
    rt.pipeline.process_pending()
    assert rt.spool.pending() == []
    failed = rt.spool.failed_names()
    assert len(failed) == 1 and "boom in processing" in rt.spool.failure_reason(failed[0])
    assert [i.title for i in rt.store.live_incidents()] == ["fine"]
    rt.close()

    listed = run("failed", "--config", str(config.path))
    assert failed[0].encode() in listed.stdout and b"boom" in listed.stdout
    out = run("retry", "--all", "--config", str(config.path))
    assert out.returncode == 0, out.stderr
    shown = json.loads(run("incidents", "--json", "--config", str(config.path)).stdout)
    assert sorted(i["title"] for i in shown) == ["explode", "fine"]
    assert b"no failed" in run("failed", "--config", str(config.path)).stdout


def test_bad_config_key_is_one_line(tmp_path):
    cfg = write_config(tmp_path, smtp_port=free_port(), extra="[bogus]\nx = 1\n")
    out = run("check-config", "--config", str(cfg))
    assert out.returncode == 78
    assert out.stderr.decode().count("\n") == 1 and b"bogus" in out.stderr


@pytest.mark.parametrize("old, new, named", [
    ("max_mail_per_address_per_hour = 1000", "max_mail_per_address_per_hour = 0",
     "max_mail_per_address_per_hour"),
    ("retry_initial_seconds = 1", "retry_initial_seconds = -5", "retry_initial_seconds"),
    ("[services]", "[postmortem]\naction_item_horizon_days = -3\n[services]",
     "action_item_horizon_days"),
])
def test_out_of_range_numbers_are_one_line(tmp_path, old, new, named):
    cfg = write_config(tmp_path, smtp_port=free_port())
    text = cfg.read_text()
    assert old in text
    cfg.write_text(text.replace(old, new, 1))
    out = run("check-config", "--config", str(cfg))
    assert out.returncode == 78, out.stdout
    assert named.encode() in out.stderr and b"at least" in out.stderr
    assert out.stderr.decode().count("\n") == 1


def test_missing_services_file_is_pointed_out(tmp_path):
    cfg = write_config(tmp_path, smtp_port=free_port(),
                       extra=f'[templates]\ndir = "{REPO / "templates"}"\n')
    text = cfg.read_text().replace(str(REPO / "config" / "services.toml"),
                                   str(tmp_path / "nope.toml"))
    cfg.write_text(text)
    out = run("check-config", "--config", str(cfg))
    assert out.returncode == 0 and b"nope.toml does not exist" in out.stdout


def test_default_config_is_valid():
    out = run("check-config", "--config", "config/mailbot.toml")
    assert out.returncode == 0, out.stderr


def test_check_config_finds_a_broken_template(tmp_path):
    import shutil
    shutil.copytree(REPO / "templates", tmp_path / "tpl")
    (tmp_path / "tpl" / "mail" / "ack.txt").write_text("{% if %}\n")
    cfg = write_config(tmp_path, smtp_port=free_port(), extra=f'[templates]\ndir = "{tmp_path / "tpl"}"\n')
    out = run("check-config", "--config", str(cfg))
    assert out.returncode == 78 and b"mail/ack.txt line 1" in out.stderr


def test_config_before_or_after_the_command_is_the_one_used(tmp_path):
    # From the repository, whose config/mailbot.toml is the default: the option must win
    # wherever it is written (before the command it used to be dropped silently).
    cfg = write_config(tmp_path, smtp_port=free_port())
    eml = tmp_path / "d.eml"
    eml.write_bytes(message("[DECLARE] config placement", DECLARATION_BODY, message_id="cp1@x"))
    assert run("--config", str(cfg), "ingest", str(eml)).returncode == 0
    assert (tmp_path / "var" / "db" / "hot.json").exists()
    before = run("--config", str(cfg), "incidents", "--json")
    after = run("incidents", "--json", "--config", str(cfg))
    assert before.returncode == after.returncode == 0, before.stderr
    titles = [[i["title"] for i in json.loads(out.stdout)] for out in (before, after)]
    assert titles == [["config placement"], ["config placement"]]
    checked = run("--config", str(cfg), "check-config")
    assert checked.returncode == 0 and str(cfg).encode() in checked.stdout
    # After the command, it still overrides the one before it.
    missing = run("--config", str(cfg), "incidents", "--config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 78 and b"nope.toml" in missing.stderr


class _GatedRelay:
    """A real SMTP relay that holds its answer to each DATA until `gate` is set, so a
    `mailbot ingest` can be kept holding the writer lock after it took its spool listing."""

    def __init__(self) -> None:
        import threading

        self.gate = threading.Event()
        self.cond = threading.Condition()
        self.data: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
        import asyncio

        with self.cond:
            self.data.append(envelope.content)
            self.cond.notify_all()
        await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 60)
        return "250 OK"

    def wait(self, n: int, timeout: float = 60) -> list[bytes]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.data) >= n, timeout), self.data
            return list(self.data)


def test_mail_spooled_while_another_ingest_holds_the_lock_is_processed(tmp_path):
    from aiosmtpd.controller import Controller

    relay = _GatedRelay()
    controller = Controller(relay, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        cfg = write_config(tmp_path, smtp_port=free_port(), relay_port=controller.port)
        first, second = tmp_path / "a.eml", tmp_path / "b.eml"
        first.write_bytes(message("[DECLARE] first", DECLARATION_BODY, message_id="lk1@x"))
        second.write_bytes(message("[DECLARE] second", DECLARATION_BODY, message_id="lk2@x"))
        holder = subprocess.Popen([sys.executable, "-m", "mailbot", "ingest", str(first),
                                   "--config", str(cfg)], cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            # Its ack is at the relay: it has processed its listing and still holds the lock.
            assert b"[INC-1]" in relay.wait(1)[0]
            late = run("ingest", str(second), "--config", str(cfg))
            assert late.returncode == 0, late.stderr
            assert b"writer lock" in late.stderr  # left to the holder, and says so
            relay.gate.set()
            out, err = holder.communicate(timeout=120)
        finally:
            relay.gate.set()
            if holder.poll() is None:
                holder.kill()
        assert holder.returncode == 0, err
        acks = relay.wait(2)
        assert any(b"[INC-2]" in a and b"second" in a for a in acks), acks
        spool_new = tmp_path / "var" / "spool" / "new"
        assert [p.name for p in spool_new.iterdir() if not p.name.startswith(".")] == []
    finally:
        controller.stop()


def test_retry_all_with_nothing_failed_is_not_an_error(tmp_path):
    cfg = write_config(tmp_path, smtp_port=free_port())
    out = run("retry", "--all", "--config", str(cfg))
    assert out.returncode == 0 and b"nothing in failed/" in out.stdout
    assert run("retry", "--config", str(cfg)).returncode == 64  # no names, no --all: usage


def test_storage_owned_by_someone_else_defers_mail_and_check_config_says_so():
    """A wrong chown, for real: the storage belongs to root and mailbot runs as nobody."""
    import shutil
    import tempfile

    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if not setpriv:  # pragma: no cover
            pytest.skip("needs setpriv to run as another user")
        as_user = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
        if subprocess.run([*as_user, sys.executable, "-c", "import mailbot"], cwd="/",
                          capture_output=True).returncode != 0:  # pragma: no cover
            pytest.skip("nobody cannot run this Python")
    else:  # pragma: no cover - a normal user cannot write a folder it made read-only
        as_user = []
    base = Path(tempfile.mkdtemp(prefix="mailbot-chown-"))
    try:
        base.chmod(0o755)
        cfg = write_config(base, smtp_port=free_port())
        cfg.chmod(0o644)
        (base / "var").mkdir(mode=0o555 if not as_user else 0o755)
        declaration = message("[DECLARE] x", DECLARATION_BODY, message_id="own@x")
        out = subprocess.run([*as_user, sys.executable, "-m", "mailbot", "ingest", "-",
                              "--config", str(cfg)], input=declaration, cwd="/",
                             capture_output=True, timeout=120)
        assert out.returncode == 75, out.stderr
        assert b"Permission denied" in out.stderr and out.stderr.count(b"\n") == 1
        assert list((base / "var").iterdir()) == []
        checked = subprocess.run([*as_user, sys.executable, "-m", "mailbot", "check-config",
                                  "--config", str(cfg)], cwd="/", capture_output=True,
                                 timeout=120)
        assert checked.returncode == 73 and b"[storage] dir" in checked.stderr
    finally:
        shutil.rmtree(base)


@pytest.fixture
def read_only_storage(tmp_path):
    """A storage folder on a file system mounted read-only (root ignores permissions, not
    a read-only mount): mailbot has written it once, then the operator's mount went ro."""
    mount = tmp_path / "ro"
    mount.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        if os.environ.get("CI") and os.geteuid() == 0:
            pytest.fail(f"cannot mount a tmpfs: {out.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs: {out.stderr.strip()}")
    try:
        cfg = write_config(tmp_path, smtp_port=free_port())
        cfg.write_text(cfg.read_text().replace(str(tmp_path / "var"), str(mount / "var")))
        assert run("check-config", "--config", str(cfg)).returncode == 0
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        yield cfg, mount / "var"
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_read_only_storage_is_named_in_one_line(read_only_storage):
    cfg, var = read_only_storage
    out = run("check-config", "--config", str(cfg))
    assert out.returncode == 73, out.stderr  # storage that cannot be written, not a crash
    assert out.stderr.count(b"\n") == 1 and b"[storage] dir: cannot" in out.stderr
    out = run("ingest", "-", "--config", str(cfg),
              stdin=message("[DECLARE] x", DECLARATION_BODY, message_id="ro@x"))
    assert out.returncode == 75 and out.stderr.count(b"\n") == 1, out.stderr
    assert str(var).encode() in out.stderr  # says where


@pytest.mark.parametrize("mistake", ["syntax", "no subject block"])
def test_a_broken_template_override_takes_no_mail(tmp_path, mistake):
    """A `[templates] dir` override that does not compile, or lacks the block the Subject:
    comes from: `serve` refuses to start and a pipe with no daemon defers (75), so no
    declaration is taken and then left unanswered in failed/."""
    shipped = (REPO / "templates" / "mail" / "ack.txt").read_text()
    override = tmp_path / "templates" / "mail"
    override.mkdir(parents=True)
    if mistake == "syntax":
        broken, said = shipped.replace("{{ ref }}", "{{ ref }", 1), b"mail/ack.txt line "
    else:
        broken, said = shipped.replace("{% block subject %}", "{% block subjet %}", 1), \
            b"lacks {% block subject %}"
    (override / "ack.txt").write_text(broken)
    port = free_port()
    cfg = write_config(tmp_path, smtp_port=port)
    cfg.write_text(cfg.read_text() + f'\n[templates]\ndir = "{tmp_path / "templates"}"\n')
    serve = subprocess.run([sys.executable, "-m", "mailbot", "serve", "--config", str(cfg)],
                           capture_output=True, cwd=REPO, timeout=60)
    assert serve.returncode == 78, serve.stderr
    assert said in serve.stderr and serve.stderr.count(b"\n") == 1, serve.stderr
    out = run("ingest", "-", "--config", str(cfg),
              stdin=message("[DECLARE] x", DECLARATION_BODY, message_id="tpl@x"))
    assert out.returncode == 75 and said in out.stderr, out.stderr
    spool = tmp_path / "var" / "spool"
    assert not any(p.is_file() for d in ("new", "failed") if (spool / d).is_dir()
                   for p in (spool / d).iterdir())
    # Fixed (an override that says hello first), the same pipe goes through, answered.
    (override / "ack.txt").write_text(shipped.replace("{% block body %}\n",
                                                      "{% block body %}\nHello from ops.\n", 1))
    out = run("ingest", "-", "--config", str(cfg),
              stdin=message("[DECLARE] x", DECLARATION_BODY, message_id="tpl@x"))
    assert out.returncode == 0, out.stderr
    sent = list((tmp_path / "var" / "outbox-sent" / "new").iterdir())
    assert len(sent) == 1 and b"Hello from ops." in sent[0].read_bytes()


def test_accepted_mail_waiting_in_the_spool_is_shown(tmp_path):
    """Mail spooled beside a lock holder that then stopped (or whose config broke) waits
    in spool/new: `failed` and `check-config` say so."""
    from mailbot.lock import WriterLock

    cfg = write_config(tmp_path, smtp_port=free_port())
    lock = WriterLock(tmp_path / "var" / "mailbot.lock")
    assert lock.acquire()
    try:
        for n in range(2):
            out = run("ingest", "-", "--config", str(cfg),
                      stdin=message(f"[DECLARE] w{n}", DECLARATION_BODY, message_id=f"w{n}@x"))
            assert out.returncode == 0, out.stderr
        for command in ("failed", "check-config"):
            out = run(command, "--config", str(cfg))
            assert out.returncode == 0, out.stderr
            assert b"2 message(s) accepted and waiting in the spool" in out.stdout, out.stdout
        # When it is most wanted, the configuration may be what is broken.
        good = cfg.read_text()
        break_config(cfg, "bad key")
        assert run("check-config", "--config", str(cfg)).returncode == 78
        out = run("failed", "--config", str(cfg))
        assert out.returncode == 0 and b"2 message(s) accepted" in out.stdout, out.stderr
        cfg.write_text(good)
    finally:
        lock.release()
    assert run("tick", "--config", str(cfg)).returncode == 0
    out = run("failed", "--config", str(cfg))
    assert b"waiting" not in out.stdout and b"no failed messages" in out.stdout
