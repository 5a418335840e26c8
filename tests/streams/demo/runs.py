"""Real `leadpulse demo` runs on stacks of their own (fresh home, free ports), for the demo tests.

A run is started and finished apart (`DemoProcess`), so the demo runs, mostly waiting
on their own timelines (70 s, five minutes), run beside the rest of the suite
(tests/streams/demo/conftest.py) rather than one after the other in it.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import REPO


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@dataclass(frozen=True)
class DemoRun:
    """A finished `leadpulse demo` on a stack of its own."""

    done: subprocess.CompletedProcess[str]
    service_ports: dict[str, int]

    def rows(self) -> dict[str, tuple[int, float, float, float, float]]:
        """source -> (leads 90d, rate 90d, won 7d, expected, in SLA 7d as a share) from the summary table (NaN for a dash)."""
        pattern = (
            r"^(\w+)\s+([\d,]+)\s+[\d,]+\s+([\d.]+)%\s+\d+:1\s+(?:[\d.]+%|–)\s+([\d,]+|–)\s+([\d,]+|–)"
            r"\s+(\d+%|–)\s+[\d,]+$"
        )
        rows = re.findall(pattern, self.done.stdout, re.M)

        def count(text: str) -> float:
            return float("nan") if text == "–" else float(text.replace(",", "").rstrip("%"))

        return {
            name: (int(n.replace(",", "")), float(rate), count(won), count(expected), count(in_sla) / 100)
            for name, n, rate, won, expected, in_sla in rows
        }

    def pipeline(self) -> tuple[int, int, int]:
        """(applied, duplicates, rejected) from the summary."""
        found = re.search(
            r"Pipeline: ([\d,]+) events applied, ([\d,]+) duplicates, ([\d,]+) rejected", self.done.stdout
        )
        assert found, self.done.stdout
        applied, duplicates, rejected = (int(n.replace(",", "")) for n in found.groups())
        return applied, duplicates, rejected

    def still_answering(self) -> list[str]:
        """Services of its stack that still accept connections."""
        answering = []
        for name, port in self.service_ports.items():
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    answering.append(name)
        return answering


class DemoProcess:
    """`leadpulse demo ARGS` started with LEADPULSE_* of a stack no other test or demo uses.

    Its output goes to files in `home`'s parent, not pipes: nobody reads a pipe while
    the demo runs in the background, and a full one would stall it.
    """

    def __init__(self, home: Path, *args: str) -> None:
        kafka, controller, redis_port, prometheus, alertmanager, exporter, webhook = free_ports(7)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("LEADPULSE_") or k == "LEADPULSE_KAFKA_LIBS"},
            "LEADPULSE_HOME": str(home),
            "LEADPULSE_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka}",
            "LEADPULSE_KAFKA_CONTROLLER_PORT": str(controller),
            "LEADPULSE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "LEADPULSE_PROMETHEUS_PORT": str(prometheus),
            "LEADPULSE_ALERTMANAGER_PORT": str(alertmanager),
            "LEADPULSE_EXPORTER_PORT": str(exporter),
            "LEADPULSE_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{webhook}/alerts",
        }
        self.ports = {"kafka": kafka, "redis": redis_port, "prometheus": prometheus, "alertmanager": alertmanager, "exporter": exporter}
        self.home = home
        home.parent.mkdir(parents=True, exist_ok=True)
        self.out, self.err = home.parent / f"{home.name}.stdout", home.parent / f"{home.name}.stderr"
        self.command = [sys.executable, "-m", "streams.cli", "demo", *args]
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(self.command, env=env, cwd=REPO, stdout=out, stderr=err, text=True)

    def stop(self) -> None:
        """SIGTERM: the demo stops what it started, which SIGKILL would strand."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(60)

    def finish(self, timeout: float) -> DemoRun:
        """Wait for the demo to end by itself (at most `timeout` s from now) and take its output."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"the demo outlived {timeout} s:\n{self.out.read_text()}\n{self.err.read_text()}")
        done = subprocess.CompletedProcess(self.command, self.process.returncode, self.out.read_text(), self.err.read_text())
        return DemoRun(done, self.ports)

