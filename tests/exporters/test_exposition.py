"""The exporter's text writer: byte for byte what prometheus_client's `generate_latest` writes."""

from __future__ import annotations

import string
import subprocess
from collections.abc import Iterator, Sequence

import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample, Timestamp

from aggregates.store import AggregateStore
from exporters.collector import LeadpulseCollector
from exporters.exposition import render
from streams.settings import LEADS_TOPIC, Settings
from tests.contract_examples import AS_OF, feed_events

TYPES = ("gauge", "counter", "histogram", "summary", "info", "stateset", "gaugehistogram", "unknown")
SUFFIXES = ("", "_total", "_created", "_bucket", "_count", "_sum", "_gsum", "_gcount", "_info")
legacy_names = st.from_regex(r"\A[a-zA-Z_:][a-zA-Z0-9_:]{0,12}\Z")
names = st.one_of(legacy_names, st.text(string.ascii_letters + "._-: é", min_size=1, max_size=8))
label_names = st.one_of(st.from_regex(r"\A[a-zA-Z_][a-zA-Z0-9_]{0,8}\Z"), st.text(string.ascii_letters + ".-é", min_size=1, max_size=6))
label_values = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**12), 10**12), st.sampled_from([0.0, -0.0, 1e7, 1234567.0]))
timestamps = st.one_of(st.none(), st.floats(0, 2e9), st.builds(Timestamp, st.integers(0, 2**31), st.integers(0, 999_999_999)))


@st.composite
def families(draw: st.DrawFn) -> list[Metric]:
    """Families of every type, whose samples share labels dicts (as `build_series`'s do)."""
    pool = draw(st.lists(st.dictionaries(label_names, label_values, max_size=4), min_size=1, max_size=4))
    out = []
    for name in draw(st.lists(names, max_size=4, unique=True)):
        metric = Metric(name, draw(st.text(max_size=12)), draw(st.sampled_from(TYPES)))
        for _ in range(draw(st.integers(0, 5))):
            labels = draw(st.one_of(st.sampled_from(pool), st.dictionaries(label_names, label_values, max_size=3)))
            metric.samples.append(Sample(name + draw(st.sampled_from(SUFFIXES)), labels, draw(values), draw(timestamps)))
        out.append(metric)
    return out


class Fixed:
    """A collector yielding the same families at every collect."""

    def __init__(self, metrics: Sequence[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self.metrics)


def library_text(metrics: Sequence[Metric]) -> bytes:
    registry = CollectorRegistry()
    registry.register(Fixed(metrics))
    return generate_latest(registry)


@settings(max_examples=300, deadline=None)
@given(families())
def test_render_writes_exactly_the_bytes_of_generate_latest_for_any_families(metrics: list[Metric]) -> None:
    assert render(metrics) == library_text(metrics)


def test_a_labels_dict_shared_by_samples_renders_the_same_each_time() -> None:
    shared = {"segment": 'a"b\\c\nd', "dimension": "source"}
    metric = Metric("leadpulse_x", "help", "gauge")
    metric.samples += [Sample("leadpulse_x", shared, 1.0), Sample("leadpulse_x", {"dimension": "all"}, -0.0), Sample("leadpulse_x", shared, 0.0)]
    text = render([metric])
    assert text == library_text([metric])
    assert text.decode().count('{dimension="source",segment="a\\"b\\\\c\\nd"}') == 2


def test_the_exporters_families_render_as_generate_latest_parse_back_and_pass_promtool(stack_settings: Settings, key_prefix: str) -> None:
    """The real collector over the contract examples: same text, same samples, no promtool finding."""
    config = stack_settings.model_copy(update={"key_prefix": key_prefix, "as_of": AS_OF})
    with redis.Redis.from_url(config.redis_url) as client:
        store = AggregateStore(client, config)
        store.apply(feed_events(), rejected={LEADS_TOPIC: 1})
        try:
            families = list(LeadpulseCollector(client, config).collect())
        finally:
            store.clear()
    text = render(families)
    assert text == library_text(families)
    samples = [s for family in text_string_to_metric_families(text.decode()) for s in family.samples]
    assert len(samples) == sum(len(family.samples) for family in families) > 500
    done = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
