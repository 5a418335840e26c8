"""The OpenAPI document against the app: the same routes, and the running API within it when fuzzed.

Schemathesis generates requests from the document (valid and invalid bodies, headers,
path values) against the real API on a real Kafka broker of its own, and checks every answer:
no 5xx but the documented 503, no status, content type or body outside the document.
The fuzzed API runs with `--insecure-no-auth`, so generated bodies reach validation and
the vendor mappers instead of stopping at the signature; its check that unsigned requests
are refused is left out here, as tests/streams/ingest/test_api.py proves that.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from streams.ingest.api import create_app
from streams.ingest.openapi import document, document_json
from streams.ingest.vendors import SECRET_SETTINGS
from streams.settings import Settings
from tests import services
from tests.streams.ingest.test_api import RunningApi

#: Examples per operation: enough to try every documented status, small enough for `make test`.
EXAMPLES = 100


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(document())
    assert document()["openapi"].startswith("3.1")


def test_every_route_of_the_app_is_documented_and_every_documented_route_exists() -> None:
    app = create_app(Settings(), insecure_no_auth=True)
    served = {
        (route.method, path)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
        for path in _paths(route.resource.canonical)
    }
    documented = {(method.upper(), path) for path, item in document()["paths"].items() for method in item}
    assert served == documented


def _paths(canonical: str) -> list[str]:
    """A route's paths as documented: `/v1/hooks/{name}` is one path per vendor."""
    if canonical == "/v1/hooks/{name}":
        return [f"/v1/hooks/{name}" for name in SECRET_SETTINGS]
    return [canonical]


def test_the_served_document_is_the_yaml_file_as_json() -> None:
    assert orjson.loads(document_json()) == document()


@pytest.fixture(scope="module")
def own_kafka(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A broker of the fuzz's own: generated events break the contract's rule that an
    `event_id` names one event (`"0"` comes back with other leads), which would make the
    shared topics, that every pipeline test recounts, no function of an event set."""
    with services.own_broker(stack_settings, tmp_path_factory.mktemp("fuzzed")) as settings:
        yield settings


@pytest.fixture(scope="module")
def running_api(own_kafka: Settings) -> Iterator[RunningApi]:
    running = RunningApi(create_app(own_kafka, insecure_no_auth=True))
    yield running
    running.close()


def served_schema(running_api: RunningApi) -> schemathesis.schemas.BaseSchema:
    """The document as the running API serves it, aimed at that API."""
    base = f"http://127.0.0.1:{running_api.port}"
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    schema.config.update(base_url=base)
    return schema


def test_the_running_api_answers_only_what_its_document_says_when_fuzzed(running_api: RunningApi) -> None:
    """Every operation, EXAMPLES generated requests each (schemathesis's own pytest plugin predates pytest 9)."""
    operations = [result.ok() for result in served_schema(running_api).get_all_operations()]
    assert {"POST /v1/events", "POST /v1/hooks/hubspot", "POST /v1/hooks/salesforce/outbound/{token}"} <= {
        op.label for op in operations
    }
    for operation in operations:
        # A JSON Schema cannot say which text is a SOAP message, so a generated XML body that
        # the document allows is no promise of an Ack: there, only the answers are checked.
        xml = "text/xml" in operation.get_request_payload_content_types()
        excluded = [ignored_auth, positive_data_acceptance] if xml else [ignored_auth]

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def answers_within_the_document(case: schemathesis.Case) -> None:
            case.call_and_validate(timeout=30, excluded_checks=excluded)

        answers_within_the_document()
