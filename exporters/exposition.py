"""The Prometheus text format (0.0.4) of metric families: what /metrics serves.

Kept here instead of prometheus_client's `generate_latest` because of its cost per
sample: since 0.22 it checks and escapes every label name of every sample for UTF-8
names (two regular expressions, a format call, a sort), ~15 us a sample, most of a
50k-series scrape. The text is the same bytes (`tests/exporters/test_exposition.py`
compares them, and `promtool check metrics` reads the exporter's output): names and
label names go through the library's own escaping, values through the format's three
escapes, but each distinct name, label pair, value and labels dict is written once per
render (series of one segment share their labels dict). Like `generate_latest` with
its default (underscore) escaping, with OpenMetrics-only samples (`_created`, `_gsum`,
`_gcount`) moved into gauges after their family.
"""

from __future__ import annotations

from collections.abc import Iterable
from math import copysign
from typing import Final

from prometheus_client.core import Metric
from prometheus_client.openmetrics.exposition import escape_label_name, escape_metric_name
from prometheus_client.utils import floatToGoString

__all__ = ["CONTENT_TYPE", "render"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
#: Name suffix and TYPE of the families whose text form differs from their OpenMetrics one.
_RENAMED: Final = {"counter": ("_total", "counter"), "info": ("_info", "gauge")}
_TYPES: Final = {"stateset": "gauge", "gaugehistogram": "histogram", "unknown": "untyped"}
_OPENMETRICS_ONLY: Final = ("_created", "_gsum", "_gcount")


def render(metrics: Iterable[Metric]) -> bytes:
    """The text format of `metrics` (a registry's `collect()`), as `generate_latest` writes it."""
    writer = _Writer()
    for metric in metrics:
        try:
            writer.family(metric)
        except Exception as error:  # as generate_latest does: say which family failed
            error.args = (error.args or ("",)) + (metric,)
            raise
    return "".join(writer.out).encode("utf-8")


class _Writer:
    """One render's output and its caches of escaped names, values and labels dicts."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self._names: dict[str, str] = {}
        self._pairs = _Pairs()
        self._values: dict[float, str] = {}  # floatToGoString of each value but zeros (counts repeat)
        self._labelsets: dict[int, str] = {}  # id of a labels dict -> its text
        self._alive: list[dict[str, str]] = []  # those dicts, so no id is reused during the render

    def family(self, metric: Metric) -> None:
        suffix, kind = _RENAMED.get(metric.type, ("", _TYPES.get(metric.type, metric.type)))
        help_text = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
        self._header(metric.name + suffix, help_text, kind)
        special = {metric.name + s: s for s in _OPENMETRICS_ONLY}
        moved: dict[str, list[str]] = {}
        out, labelsets, alive, texts, labels_text = self.out, self._labelsets, self._alive, self._values, self._labels
        last_name, escaped = None, ""
        for sample in metric.samples:  # inline, not a call per sample: ~50,000 of them
            name, labels, value, timestamp = sample[0], sample[1], sample[2], sample[3]
            if name is not last_name:  # a family's samples mostly share one name
                last_name, escaped = name, self._name(name)
            cached = texts.get(value) if value else None  # 0.0 and -0.0: one key, two texts
            if cached is not None:
                text = cached
            elif not value:
                text = "-0.0" if copysign(1.0, value) < 0 else "0.0"
            else:
                text = texts[value] = floatToGoString(value)
            if timestamp is not None:
                text = f"{text} {int(float(timestamp) * 1000):d}"
            if labels:
                key = id(labels)
                label_text = labelsets.get(key)
                if label_text is None:
                    alive.append(labels)
                    label_text = labelsets[key] = labels_text(labels)
                line = f"{escaped}{{{label_text}}} {text}\n"
            else:
                line = f"{escaped} {text}\n"
            moved_suffix = special.get(name) if name is not metric.name else None
            if moved_suffix is None:
                out.append(line)
            else:
                moved.setdefault(moved_suffix, []).append(line)
        for moved_suffix, lines in sorted(moved.items()):
            self._header(metric.name + moved_suffix, help_text, "gauge")
            out.extend(lines)

    def _header(self, name: str, help_text: str, kind: str) -> None:
        escaped = escape_metric_name(name)
        self.out.append(f"# HELP {escaped} {help_text}\n# TYPE {escaped} {kind}\n")

    def _labels(self, labels: dict[str, str]) -> str:
        return ",".join(map(self._pairs.__getitem__, sorted(labels.items())))

    def _name(self, name: str) -> str:
        escaped = self._names.get(name)
        if escaped is None:
            escaped = self._names[name] = escape_metric_name(name)
        return escaped


class _Pairs(dict[tuple[str, str], str]):
    """`name="value"` of each (label name, label value) pair, escaped on first use."""

    def __missing__(self, pair: tuple[str, str]) -> str:
        name, value = pair
        text = value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
        self[pair] = rendered = f'{escape_label_name(name)}="{text}"'
        return rendered
