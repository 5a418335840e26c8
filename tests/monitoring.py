"""The real monitoring services for the exporter, rules and dashboard tests.

Each test module starts what it needs on free ports under its own temporary directory:
`leadpulse exporter`, Prometheus (1 s scrape and evaluation intervals) with the shipped
rules re-rendered with short `for:` durations, Alertmanager with short grouping waits,
and a webhook receiver. Nothing here touches the test stack's own Prometheus or
Alertmanager. Every wait is bounded and names what it waited for.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.services import free_port
from tests import REPO

DEPLOY = REPO / "deploy"
LEADPULSE = Path(sys.executable).with_name("leadpulse")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "alertmanager"  # Debian's name first, as streams.stack
START_TIMEOUT = 60.0
T = TypeVar("T")



def wait_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.25) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def http_get(url: str, timeout: float = 5.0) -> bytes | None:
    """The body of a 200 answer, or None when nothing (good) answers yet."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bytes(response.read())
    except OSError:
        return None


@contextmanager
def running(command: list[str], log: Path, ready: Callable[[], bool], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` until the block ends (SIGTERM, then SIGKILL after 15 s); wait for `ready`."""
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=cwd)
    try:
        wait_until(lambda: ready() or _exited(process, log), START_TIMEOUT, f"{command[0]} to answer (log {log})")
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _exited(process: subprocess.Popen[bytes], log: Path) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"{process.args!r} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
    return False


@contextmanager
def exporter(env: Mapping[str, str], workdir: Path) -> Iterator[str]:
    """`leadpulse exporter` on a free port; yields its /metrics URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    command = [str(LEADPULSE), "exporter", "--host", "127.0.0.1", "--port", str(port)]
    with running(command, workdir / f"exporter-{port}.log", lambda: http_get(url) is not None, env):
        yield url


def rules_with_short_for(dest: Path, duration: str = "2s") -> Path:
    """The shipped rules with every `for:` set to `duration`, and groups with an interval of
    their own evaluated at Prometheus's 1 s too; nothing else changes."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "leadpulse.yml").read_text())
    for group in config["groups"]:
        group.pop("interval", None)
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = duration
    dest.write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


@dataclass
class Prometheus:
    """Queries against a running Prometheus's HTTP API."""

    url: str

    def api(self, path: str, **params: str) -> Any:
        body = http_get(f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        assert body is not None, f"Prometheus did not answer /api/v1/{path} {params}"
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the result as a list of samples (vector) or one scalar sample."""
        data = self.api("query", query=expr)
        return data["result"] if data["resultType"] in ("vector", "matrix") else [{"metric": {}, "value": data["result"]}]

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.api("alerts")["alerts"])


@contextmanager
def prometheus(workdir: Path, metrics_url: str, alertmanager_port: int | None = None) -> Iterator[Prometheus]:
    """Prometheus scraping `metrics_url` every second as job `leadpulse`, evaluating the rules every second."""
    port = free_port()
    target = urllib.parse.urlparse(metrics_url).netloc
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(rules_with_short_for(workdir / "rules.yml"))],
        "scrape_configs": [{"job_name": "leadpulse", "static_configs": [{"targets": [target]}]}],
    }
    if alertmanager_port is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]}
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{port}"
    command = [
        "prometheus",
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with running(command, workdir / "prometheus.log", lambda: http_get(f"{url}/-/ready") is not None):
        yield Prometheus(url)


@contextmanager
def alertmanager(workdir: Path, webhook_url: str) -> Iterator[int]:
    """Alertmanager with the shipped route, the test's webhook and 1 s grouping waits; yields its port."""
    port = free_port()
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    config["route"].update(group_wait="1s", group_interval="1s")
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook_url
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
    command = [
        ALERTMANAGER,
        f"--config.file={workdir / 'alertmanager.yml'}",
        f"--storage.path={workdir / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    url = f"http://127.0.0.1:{port}/-/ready"
    with running(command, workdir / "alertmanager.log", lambda: http_get(url) is not None):
        yield port


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """An HTTP server on a free port in a thread; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class WebhookReceiver:
    """An HTTP server that records every Alertmanager notification it is sent."""

    notifications: list[dict[str, Any]] = field(default_factory=list)

    @contextmanager
    def serving(self) -> Iterator[str]:
        received = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        with serving(Handler) as base:
            yield f"{base}/alerts"

    def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """Alerts received so far whose labels include `labels`."""
        return [
            alert
            for note in list(self.notifications)
            for alert in note["alerts"]
            if all(alert["labels"].get(k) == v for k, v in labels.items())
        ]


@contextmanager
def serving_metrics(text: str) -> Iterator[str]:
    """A /metrics endpoint answering `text`: synthetic samples of series no exporter of this tree publishes yet."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = text.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    with serving(Handler) as base:
        yield f"{base}/metrics"


def conversion_feed(now: datetime, tag: str, source: str, baseline: tuple[int, int], recent: tuple[int, int]) -> list[dict[str, Any]]:
    """Events of one source: `baseline` = (leads, customers) created 15-85 days ago, `recent` = the last 6 days.

    Customers convert 12 hours after creation, baseline and recent alike, so the
    lag-aware LeadConversionDrop predicts the recent wins from the baseline's rate at
    that lag and a source whose recent leads convert less is a drop.
    Leads also reach mql and sql, some are disqualified, some deals are lost, so every
    series of CONTRACT section 3 has data. Campaigns alternate between two names.
    """
    events: list[dict[str, Any]] = []
    for part, (leads, customers), ages in (
        ("b", baseline, (15.0, 85.0)),
        ("r", recent, (0.5, 5.5)),
    ):
        for i in range(leads):
            lead = f"{tag}-{source}-{part}{i}"
            created = now - timedelta(days=ages[0] + (ages[1] - ages[0]) * i / max(leads - 1, 1), hours=1)
            events += _lead_events(lead, created, source, f"{tag}_campaign_{i % 2}", i, i < customers, timedelta(hours=12))
    return events


def _lead_events(lead: str, created: datetime, source: str, campaign: str, i: int, customer: bool, delay: timedelta) -> list[dict[str, Any]]:
    def event(kind: str, at: datetime, **fields: Any) -> dict[str, Any]:
        # One id per event (mql and sql are two lead.qualified): the shared topics must keep
        # "one id, one content", or the worker tests' reference comparison breaks.
        name = f"{lead}-{kind}" + (f"-{fields['stage']}" if "stage" in fields else "")
        return {"event_id": name, "type": kind, "occurred_at": at.isoformat(), "lead_id": lead, **fields}

    out = [event("lead.created", created, source=source, campaign=campaign)]
    if customer or i % 3 == 0:
        out.append(event("lead.qualified", created + delay / 4, stage="mql"))
    if customer or i % 6 == 0:
        out.append(event("lead.qualified", created + delay / 2, stage="sql"))
    if customer:
        out.append(event("deal.won", created + delay, deal_id=f"{lead}-deal", amount=1000 + 10 * i))
    elif i % 6 == 0:
        out.append(event("deal.lost", created + delay, deal_id=f"{lead}-deal"))
    elif i % 5 == 1:
        out.append(event("lead.disqualified", created + delay / 4, reason="junk"))
    return out
