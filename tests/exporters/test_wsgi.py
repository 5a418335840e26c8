"""/metrics over HTTP: the text format whatever Prometheus asks for, gzip, name filters."""

from __future__ import annotations

import gzip
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporters.exposition import CONTENT_TYPE
from exporters.wsgi import start_server
from tests.services import free_port

#: What Prometheus 2.42 sends: OpenMetrics first.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


class Two:
    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("leadpulse_a", "A gauge.", value=1.5)
        events = CounterMetricFamily("leadpulse_events", "A counter.", labels=["topic"])
        events.add_metric(["leads"], 7)
        yield events


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, CollectorRegistry]]:
    registry = CollectorRegistry(auto_describe=True)  # so `name[]` knows the collector's names
    registry.register(Two())
    port = free_port()
    server, thread = start_server(registry, "127.0.0.1", port)
    yield f"http://127.0.0.1:{port}", registry
    server.shutdown()
    thread.join()


def get(url: str, method: str = "GET", **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_prometheus_asking_for_openmetrics_gets_the_text_format_of_generate_latest(served: tuple[str, CollectorRegistry]) -> None:
    url, registry = served
    status, headers, body = get(f"{url}/metrics", Accept=PROMETHEUS_ACCEPT)
    assert (status, headers["Content-Type"]) == (200, CONTENT_TYPE)
    assert body == generate_latest(registry)


def test_gzip_is_sent_when_accepted_and_unpacks_to_the_same_text(served: tuple[str, CollectorRegistry]) -> None:
    url, registry = served
    status, headers, body = get(f"{url}/metrics", **{"Accept-Encoding": "gzip"})
    assert (status, headers["Content-Encoding"]) == (200, "gzip")
    assert gzip.decompress(body) == generate_latest(registry)


def test_name_filter_keeps_only_the_named_series(served: tuple[str, CollectorRegistry]) -> None:
    url, registry = served
    _, _, body = get(f"{url}/metrics?name[]=leadpulse_events_total")
    assert body == generate_latest(registry.restricted_registry(["leadpulse_events_total"]))
    assert b"leadpulse_a" not in body and b'leadpulse_events_total{topic="leads"} 7.0' in body


def test_other_methods_get_the_librarys_answers(served: tuple[str, CollectorRegistry]) -> None:
    url, _ = served
    status, headers, _ = get(f"{url}/metrics", method="OPTIONS")
    assert (status, headers["Allow"]) == (200, "OPTIONS,GET")
    assert get(f"{url}/metrics", method="POST")[0] == 405
