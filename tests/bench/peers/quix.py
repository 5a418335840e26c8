"""The Quix Streams peer of the pipeline benchmark: per-source leads and customers.

    python -m tests.bench.peers.quix BOOTSTRAP CONSUMER_GROUP STATE_DIR

The same job as the Kafka Streams peer (`kstreams/`, see docs/bench.md): read
leadpulse.leads and leadpulse.deals from the beginning; stage one keeps each lead's state
(the source of its first lead.created, won or not) in Quix's RocksDB state, which is
scoped to the record key, lead_id (both topics are keyed by it and co-partitioned), and
emits {"source", "kind": "lead"} when a lead first counts and "customer" when it first has
both a source and a deal.won; stage two, after `group_by` (a repartition topic) by
source, keeps per-source counts in state. Records that are not a JSON object with a string
type and lead_id (and, for lead.created, source) are skipped.

Stdout is the benchmark's protocol (`tests.bench.peers.progress`): every REPORT_S, when
something moved, `P <microseconds> <records read> <deltas emitted> <deltas counted>`;
after SIGTERM and Quix's clean stop, `C <JSON: source -> [leads, customers]>`.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Final

import orjson
from quixstreams import Application, State

from streams.settings import DEALS_TOPIC, LEADS_TOPIC

REPORT_S: Final = 0.01
CREATED: Final = "lead.created"
WON: Final = "deal.won"


class Progress:
    """Counters of the processing thread, printed by a reporter thread (the GIL makes `+= 1` safe enough to read)."""

    def __init__(self) -> None:
        self.read = self.emitted = self.counted = 0
        self.latest: dict[str, list[int]] = {}  # the last counts stage two stored per source
        self._last = (0, 0, 0)
        self._lock = threading.Lock()

    def report(self) -> None:
        with self._lock:
            now = (self.read, self.emitted, self.counted)
            if now != self._last:
                self._last = now
                print(f"P {time.monotonic_ns() // 1000} {now[0]} {now[1]} {now[2]}", flush=True)

    def report_every(self, stop: threading.Event) -> None:
        while not stop.wait(REPORT_S):
            self.report()


PROGRESS = Progress()


def parse(value: bytes) -> dict[str, Any] | None:
    """The record's fields when it is one of the two kinds the job counts, else None."""
    PROGRESS.read += 1
    try:
        fields = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(fields, dict) or not isinstance(fields.get("lead_id"), str):
        return None
    kind = fields.get("type")
    if kind == CREATED and isinstance(fields.get("source"), str) or kind == WON:
        return fields
    return None


def lead_state(fields: dict[str, Any], state: State) -> list[dict[str, str]]:
    """Stage one: update the lead's [source or None, won] and emit what it now counts for the first time."""
    source, won = state.get("lead", (None, False))
    created = fields["type"] == CREATED
    if (created and source is not None) or (not created and won):
        return []
    if created:
        source = fields["source"]
    else:
        won = True
    state.set("lead", (source, won))
    deltas = [{"source": source, "kind": "lead"}] if created else []
    if source is not None and won:
        deltas.append({"source": source, "kind": "customer"})
    PROGRESS.emitted += len(deltas)
    return deltas


def source_counts(delta: dict[str, str], state: State) -> None:
    """Stage two: the source's [leads, customers]."""
    counts = list(state.get("counts", (0, 0)))
    counts[0 if delta["kind"] == "lead" else 1] += 1
    state.set("counts", counts)
    PROGRESS.latest[delta["source"]] = counts
    PROGRESS.counted += 1


def main(bootstrap: str, group: str, state_dir: str) -> None:
    # Defaults but two: read from the beginning (Quix starts at "latest") and, spelled
    # out, at-least-once (exactly-once off).
    app = Application(
        broker_address=bootstrap, consumer_group=group, state_dir=state_dir, auto_offset_reset="earliest",
        processing_guarantee="at-least-once", loglevel="WARNING",
    )  # fmt: skip
    leads, deals = (
        app.dataframe(app.topic(name, key_deserializer="bytes", value_deserializer="bytes"))
        for name in (LEADS_TOPIC, DEALS_TOPIC)
    )
    sdf = leads.concat(deals).apply(parse).filter(lambda fields: fields is not None)
    sdf = sdf.apply(lead_state, stateful=True, expand=True)
    sdf = sdf.group_by("source", name="by_source").update(source_counts, stateful=True)
    stop = threading.Event()
    reporter = threading.Thread(target=PROGRESS.report_every, args=(stop,), daemon=True)
    reporter.start()
    app.run()  # returns on SIGTERM, once Quix has stopped cleanly
    stop.set()
    reporter.join()
    PROGRESS.report()
    print(f"C {orjson.dumps(PROGRESS.latest).decode()}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
