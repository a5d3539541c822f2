"""The README's "Try it", run as a reader runs it: `mailbot serve` on a copy of the sample
config, then the README's own Python block."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

from tests.support import REPO, DaemonProcess, free_port


def try_it_script() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Try it", 1)[1]
    return re.search(r"<<'EOF'\n(.*?)\nEOF\n", section, re.DOTALL).group(1)


def test_try_it_prints_the_acknowledgement_it_waited_for(tmp_path):
    port = free_port()
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config, ignore=shutil.ignore_patterns("var"))
    toml = config / "mailbot.toml"
    toml.write_text(toml.read_text().replace("port = 8025", f"port = {port}", 1))
    script = try_it_script()
    assert '"127.0.0.1", 8025' in script and "config/var/outbox-sent/new" in script
    daemon = DaemonProcess(toml, port).start()
    try:
        done = subprocess.run([sys.executable, "-"], input=script.replace("8025", str(port)),
                              capture_output=True, text=True, cwd=tmp_path, timeout=60)
    finally:
        daemon.terminate()
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()  # printed at once, not after a second look
    # The acknowledgement to the list, and (customer-facing, a liaison named) the
    # liaison's draft customer statement.
    kinds = [p.split(".")[-2] for p in printed]
    assert "ack" in kinds and set(kinds) <= {"ack", "customer_statement"}, printed
    ack = tmp_path / next(p for p in printed if ".ack." in p)
    assert ack.parent == config / "var" / "outbox-sent" / "new"
    assert b"[INC-1]" in ack.read_bytes() and b"To: incidents@example.com" in ack.read_bytes()


def test_the_systemd_section_names_every_unit_and_the_venv_the_units_run():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = " ".join(readme.split("## systemd", 1)[1].split("\n## ", 1)[0].split())
    claim = re.search(r"All (\w+) units \(([^)]*)\) pass `systemd-analyze verify`", section)
    named = set(re.findall(r"`([\w.-]+)`", claim.group(2)))
    units = {p.name for p in (REPO / "systemd").iterdir() if p.suffix in (".service", ".timer")}
    assert named == units
    assert claim.group(1) == {2: "two", 3: "three", 4: "four", 5: "five"}[len(units)]
    venv = re.search(r"`/usr/bin/python3 -m venv (\S+)`", section).group(1)
    for unit in units:
        for line in (REPO / "systemd" / unit).read_text().splitlines():
            if line.startswith("ExecStart"):
                assert line.split("=", 1)[1].startswith(venv + "/bin/"), (unit, line)
