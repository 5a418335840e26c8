"""Run a peer as a subprocess, follow its progress lines to caught up, stop it and collect its counts.

A peer prints `P <microseconds> <records read> <deltas emitted> <deltas counted>` when
something moved (every 10 ms at most) and, after SIGTERM, `C <JSON counts>`. It has
caught up when it has read every input record and counted every delta it emitted. Its
rate is measured like the worker's (c): the records read between its first progress
line and caught up, over the time between, on the peer's own clock; start-up, the group
join and the final commit are not counted.
"""

from __future__ import annotations

import importlib.util
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, NamedTuple

import orjson

from tests.bench.common import REPO, BenchError

#: Built by `make bench` (Makefile, target kstreams-peer) with its runtime jars beside it in libs/.
KSTREAMS_JAR: Final = REPO / "tests" / "bench" / "peers" / "kstreams" / "target" / "kstreams-peer.jar"
PEERS: Final = ("quix", "kstreams")
#: A peer's clean stop: Kafka Streams commits and closes its RocksDB stores, Quix the same.
STOP_TIMEOUT_S: Final = 60.0


class Tick(NamedTuple):
    """One progress line: the peer's clock and its three counters."""

    micros: int
    read: int
    emitted: int
    counted: int

    @classmethod
    def parse(cls, line: str) -> Tick | None:
        """The tick of a `P` line; None for any other line."""
        parts = line.split()
        if len(parts) != 5 or parts[0] != "P":
            return None
        return cls(*map(int, parts[1:]))


@dataclass
class Follow:
    """The first tick that read something and the tick at which `total` records were all processed."""

    total: int
    first: Tick | None = None
    done: Tick | None = None

    def see(self, tick: Tick) -> bool:
        """Note `tick`; True once caught up."""
        if self.first is None and tick.read > 0:
            self.first = tick
        if self.done is None and tick.read >= self.total and tick.counted == tick.emitted:
            self.done = tick
        return self.done is not None

    @property
    def rate(self) -> float:
        """Records per second between the first tick and caught up."""
        assert self.first is not None and self.done is not None
        return (self.done.read - self.first.read) / ((self.done.micros - self.first.micros) / 1e6)


@dataclass(frozen=True)
class PeerRun:
    rate: float  # records/s
    counts: dict[str, tuple[int, int]]  # source -> (leads, customers)


def check_installed() -> None:
    """BenchError unless both peers can run: what `make bench` installs and builds."""
    if importlib.util.find_spec("quixstreams") is None:
        raise BenchError("quixstreams is not installed: `make bench` installs it (pip install -e '.[bench]')")
    if not KSTREAMS_JAR.exists():
        raise BenchError(f"{KSTREAMS_JAR.relative_to(REPO)} is missing: `make bench` builds it with Maven")


def command(name: str, bootstrap: str, group: str, state_dir: Path) -> list[str]:
    """How to start peer `name` ("quix" or "kstreams") as consumer group / application id `group`."""
    if name == "quix":
        return [sys.executable, "-m", "tests.bench.peers.quix", bootstrap, group, str(state_dir)]
    classpath = f"{KSTREAMS_JAR}:{KSTREAMS_JAR.parent / 'libs'}/*"
    return ["java", "-cp", classpath, "dev.leadpulse.bench.KStreamsPeer", bootstrap, group, str(state_dir)]


def run_peer(name: str, command: list[str], log: Path, total: int, timeout_s: float) -> PeerRun:
    """Start peer `name`'s `command`, wait until it processed all `total` input records, stop it; its rate and counts."""
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, text=True)
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
    follow, counts = Follow(total), None
    try:
        deadline = time.monotonic() + timeout_s
        for line in _lines(lines, deadline, f"did not process all {total:,} records in {timeout_s:g} s"):
            tick = Tick.parse(line)
            if tick is not None and follow.see(tick):
                break
        else:
            raise BenchError(f"exited before it processed all {total:,} records")
        process.send_signal(signal.SIGTERM)
        for line in _lines(lines, time.monotonic() + STOP_TIMEOUT_S, f"did not stop in {STOP_TIMEOUT_S:g} s"):
            if line.startswith("C "):
                counts = {source: (leads, customers) for source, (leads, customers) in orjson.loads(line[2:]).items()}
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BenchError(f"the {name} peer closed its stdout but did not exit in {STOP_TIMEOUT_S:g} s; see {log}") from None
    except BenchError as error:
        raise BenchError(f"the {name} peer {error}; see {log}") from None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if counts is None:
        raise BenchError(f"the {name} peer printed no counts when stopped; see {log}")
    return PeerRun(follow.rate, counts)


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    """Every stdout line into `lines`, then None at the end of the stream."""
    for line in stream:
        lines.put(line)
    lines.put(None)


def _lines(lines: queue.Queue[str | None], deadline: float, late: str) -> Iterator[str]:
    """The peer's lines until its stdout ends; BenchError(`late`) past `deadline`."""
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise BenchError(late) from None
        if line is None:
            return
        yield line
