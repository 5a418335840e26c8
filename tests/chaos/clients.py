"""The soak's clients: signed API batches, form and Segment hook calls and `publish` runs, each retried as a sender would.

A request answered 503, or not answered at all (the API being restarted, a timeout),
is sent again until it is answered; a 202 acknowledges its events in the ledger. Any
other answer is a refusal, recorded and not retried. Every attempt is logged with its
time and outcome for the figures (`tests.chaos.figures`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiohttp
import orjson

from streams.ingest.signing import SIGNATURE_HEADER, sign
from streams.ingest.vendors import form, segment
from tests.chaos.traffic import Event, HookCall, Ledger
from tests.pipeline import LEADPULSE

#: How long a client waits for an answer: well past the API's own 10 s produce timeout.
REQUEST_TIMEOUT_S: Final = 30.0
#: The pause after no answer at all (connection refused while the API restarts).
RECONNECT_S: Final = 1.0
#: Longest pause a client takes on Retry-After, so a short soak still retries a few times.
MOST_RETRY_AFTER_S: Final = 5.0
PUBLISH_TIMEOUT_S: Final = 120.0


@dataclass(frozen=True)
class Attempt:
    """One HTTP request: when it was sent, how long it took, and its status (0: no answer)."""

    sent: float
    seconds: float
    status: int
    retry_after: bool = False


@dataclass
class Outcome:
    """One offer (a request body, or a `publish` file), through all its attempts."""

    first: float
    attempts: list[Attempt] = field(default_factory=list)
    acknowledged_at: float | None = None


@dataclass
class Clients:
    """Shared by the senders: where to send, the secrets, the ledger and the log of offers."""

    api_url: str
    secret: bytes
    form_secret: bytes
    segment_secret: bytes
    env: dict[str, str]
    ledger: Ledger = field(default_factory=Ledger)
    api: list[Outcome] = field(default_factory=list)
    publish: list[Outcome] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)

    async def post_events(self, session: aiohttp.ClientSession, events: Sequence[Event]) -> None:
        """A signed JSON Lines batch to `/v1/events`."""
        body = b"\n".join(orjson.dumps(e) for e in events) + b"\n"
        headers = {"Content-Type": "application/x-ndjson", SIGNATURE_HEADER: sign(self.secret, body)}
        await self._post(session, "/v1/events", body, headers, events)

    async def post_hook(self, session: aiohttp.ClientSession, call: HookCall) -> None:
        """One call to `/v1/hooks/<hook>`, signed the vendor's way (docs/api.md), not with leadpulse's code."""
        body = orjson.dumps(call.body)
        if call.hook == "form":
            signature = {form.SIGNATURE_HEADER: "sha256=" + hmac.new(self.form_secret, body, hashlib.sha256).hexdigest()}
        else:
            signature = {segment.SIGNATURE_HEADER: hmac.new(self.segment_secret, body, hashlib.sha1).hexdigest()}
        await self._post(session, f"/v1/hooks/{call.hook}", body, {"Content-Type": "application/json", **signature}, [call.event])

    async def _post(self, session: aiohttp.ClientSession, path: str, body: bytes, headers: dict[str, str],
                    events: Sequence[Event]) -> None:  # fmt: skip
        self.ledger.offer(events)
        outcome = Outcome(time.monotonic())
        self.api.append(outcome)
        while True:
            sent = time.monotonic()
            status, pause, retry_after = 0, RECONNECT_S, False
            try:
                async with session.post(self.api_url + path, data=body, headers=headers) as response:
                    status, answer = response.status, await response.read()
                    retry_after = "Retry-After" in response.headers
                    if retry_after:
                        pause = min(float(response.headers["Retry-After"]), MOST_RETRY_AFTER_S)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            outcome.attempts.append(Attempt(sent, time.monotonic() - sent, status, retry_after))
            if status == 202:
                outcome.acknowledged_at = time.monotonic()
                self.ledger.acknowledge(events)
                return
            if status not in (0, 503):
                self.refusals.append(f"{path}: HTTP {status} {answer[:200]!r}")
                return
            await asyncio.sleep(pause)

    async def run_publish(self, events: Sequence[Event]) -> None:
        """`leadpulse publish FILE` until it exits 0: then Kafka acknowledged every record."""
        self.ledger.offer(events)
        outcome = Outcome(time.monotonic())
        self.publish.append(outcome)
        with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as file:
            file.write(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
        path = Path(file.name)
        try:
            while True:
                sent = time.monotonic()
                code = await _publish(path, self.env)
                outcome.attempts.append(Attempt(sent, time.monotonic() - sent, 200 if code == 0 else 0))
                if code == 0:
                    outcome.acknowledged_at = time.monotonic()
                    self.ledger.acknowledge(events)
                    return
                await asyncio.sleep(RECONNECT_S)
        finally:
            os.unlink(path)


async def _publish(path: Path, env: dict[str, str]) -> int | None:
    """One `leadpulse publish` run's exit code; None when it could not start or was killed after PUBLISH_TIMEOUT_S."""
    try:
        process = await asyncio.create_subprocess_exec(
            LEADPULSE, "publish", str(path), env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
    except OSError:  # no fork on a machine out of processes or memory: try again, as a cron job would
        return None
    try:
        return await asyncio.wait_for(process.wait(), PUBLISH_TIMEOUT_S)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError):  # it may have exited just now
            process.kill()
        await process.wait()
        return None


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S))
