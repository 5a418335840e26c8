"""`make install`'s check for system Prometheus and Alertmanager daemons finds them, and only them, without warnings."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from tests import REPO


def daemon_pattern() -> str:
    """SYSTEM_DAEMONS as make expands it (`$$` is one `$`)."""
    match = re.search(r"^SYSTEM_DAEMONS := (.+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert match is not None, "Makefile has no SYSTEM_DAEMONS"
    return match.group(1).replace("$$", "$")


def test_the_daemon_check_finds_a_long_named_alertmanager_and_not_the_stacks_own_nor_itself(tmp_path: Path) -> None:
    sleep = shutil.which("sleep") or "/bin/sleep"
    daemon, ours = tmp_path / "prometheus-alertmanager", tmp_path / "prometheus"
    shutil.copy(sleep, daemon)
    shutil.copy(sleep, ours)
    processes = [
        subprocess.Popen([str(daemon), "300"]),  # a system daemon: its name is longer than 15 characters
        subprocess.Popen([str(ours), "300", "--web.listen-address=127.0.0.1:19090"]),  # the stack's own
    ]
    try:
        time.sleep(0.2)
        check = subprocess.run(
            ["bash", "-c", f"pgrep -a -f '{daemon_pattern()}' | grep -v -- '--web.listen-address=' || true"],
            capture_output=True, text=True, timeout=30, env={**os.environ, "LC_ALL": "C"},
        )  # fmt: skip
    finally:
        for process in processes:
            process.kill()
            process.wait()
    found = check.stdout.splitlines()
    assert check.stderr == ""
    assert [line.split(" ", 1)[1] for line in found if str(tmp_path) in line] == [f"{daemon} 300"]
    assert not any("pgrep" in line for line in found)
