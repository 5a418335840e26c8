"""The demo's alerting: a faster Prometheus while it runs, and the alerts Alertmanager holds.

The shipped rules wait 30 minutes before `LeadConversionDrop` fires, an hour before
`LeadFollowUpSlow` does, and Prometheus looks every 15 s: right for production, far too
slow for a demo that replays months in two minutes. So while the demo runs, the
stack's Prometheus (only one this home started: someone else's is not ours to
reconfigure) scrapes and evaluates every 5 s and the two business alerts of the
scenario wait FAST_FOR; nothing else about the rules changes, so `LeadFeedStalled` does
not fire during the replay of the past. Its rendered config is
restored and reloaded when the demo ends; a demo that died without restoring left a
backup, which the next one restores from.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from glob import glob
from pathlib import Path
from typing import Any, Final

import yaml

from streams.settings import Settings

FAST_INTERVAL: Final = "5s"
#: Alerts whose `for:` the demo shortens. In production the data sets their order: a
#: break of follow-up shows in the follow-up series within a day or two, in the customers
#: won only weeks later. The exporter judges every window as of the wall clock, so the
#: replay fills both alerts' recent windows in its last seconds, and both conditions come
#: true within some 10 s of each other, often the conversion one first (measured;
#: README, step 5 of the demo). So here the waits decide the order: two evaluation
#: intervals for the follow-up share, 30 s for a conversion drop that persists. Cutting
#: both by one factor (60 s and 30 s) would let the conversion alert fire first.
FAST_FOR: Final = {"LeadConversionDrop": "30s", "LeadFollowUpSlow": "10s"}
HTTP_TIMEOUT_S: Final = 3.0


class DemoAlertError(RuntimeError):
    """Prometheus refused the demo's configuration; its log says why."""


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as Alertmanager lists it."""

    name: str
    labels: dict[str, str]
    state: str  # active, suppressed or unprocessed
    since: str  # startsAt, RFC 3339

    def describe(self) -> str:
        """`LeadConversionDrop source=paid_search (critical)`: what fired, where, how badly."""
        labels = {k: v for k, v in self.labels.items() if k not in _NOT_DESCRIBED}
        scope = (
            [f"{labels.pop('dimension')}={labels.pop('segment')}"] if {"dimension", "segment"} <= labels.keys() else []
        )
        scope += [f"{k}={v}" for k, v in sorted(labels.items()) if k != "severity"]
        severity = [f"({labels['severity']})"] if "severity" in labels else []
        return " ".join([self.name, *scope, *severity])


#: Labels every alert of one exporter shares: noise in a one-line description.
_NOT_DESCRIBED: Final = frozenset({"alertname", "instance", "job"})


def fetch_alerts(port: int) -> list[Alert] | None:
    """The alerts Alertmanager on 127.0.0.1:`port` holds now, or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/alerts", timeout=HTTP_TIMEOUT_S) as response:
            listed = json.load(response)
    except (OSError, ValueError):  # refused, timed out, HTTP error, not JSON
        return None
    return [
        Alert(
            item["labels"].get("alertname", "?"),
            item["labels"],
            item.get("status", {}).get("state", "?"),
            item.get("startsAt", ""),
        )
        for item in listed
    ]


@contextmanager
def fast_alerts(settings: Settings, ours: bool) -> Iterator[bool]:
    """Run Prometheus with the demo's intervals inside the block; yields whether it could.

    `ours`: whether this home started the Prometheus on `settings.prometheus_port`
    (`stack status` says running/ours); only then is its config rendered under the home.
    """
    config_path = settings.home.expanduser().resolve() / "prometheus" / "prometheus.yml"
    if not ours or not config_path.exists():
        yield False
        return
    backup = config_path.with_name("prometheus.yml.before-demo")
    rules_dir = config_path.with_name("demo-rules")
    if not (backup.exists() and str(rules_dir) in config_path.read_text()):  # else a dead demo's overlay
        shutil.copyfile(config_path, backup)
    try:
        config_path.write_text(_fast_config(backup.read_text(), rules_dir))
        _reload(settings.prometheus_port)
        yield True
    finally:
        shutil.copyfile(backup, config_path)
        with suppress(DemoAlertError):  # Prometheus is gone: the restored file is what it starts with
            _reload(settings.prometheus_port)
        backup.unlink()
        shutil.rmtree(rules_dir, ignore_errors=True)


def _fast_config(rendered: str, rules_dir: Path) -> str:
    """The rendered config with demo intervals, its rule files copied into `rules_dir` with FAST_FOR applied."""
    config = yaml.safe_load(rendered)
    config.setdefault("global", {}).update(scrape_interval=FAST_INTERVAL, evaluation_interval=FAST_INTERVAL)
    rules_dir.mkdir(exist_ok=True)
    for path in sorted({Path(p) for pattern in config.get("rule_files", []) for p in glob(pattern)}):
        rules = yaml.safe_load(path.read_text())
        for group in rules.get("groups", []):
            for rule in group.get("rules", []):
                if rule.get("alert") in FAST_FOR:
                    rule["for"] = FAST_FOR[rule["alert"]]
        (rules_dir / path.name).write_text(_dump(rules))
    config["rule_files"] = [str(rules_dir / "*.yml")]
    return "# Written by `leadpulse demo` for its duration; restored when it ends.\n" + _dump(config)


class _NoAliases(yaml.SafeDumper):
    """Writes shared objects (the rules' `&drop_annotations`) out in full, as plain YAML."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump(document: Any) -> str:
    return yaml.dump(document, Dumper=_NoAliases, sort_keys=False)


def _reload(port: int) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/-/reload", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S * 3):
            return
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace").strip()
        raise DemoAlertError(f"Prometheus on port {port} refused the demo config: {detail}") from error
    except OSError as error:
        raise DemoAlertError(f"Prometheus on port {port} did not answer the reload: {error}") from error
