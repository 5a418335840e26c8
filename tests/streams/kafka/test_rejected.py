"""The rejected-topic envelope that publish, the API and the workers share."""

from __future__ import annotations

from streams.events import Rejection, parse_record
from streams.kafka.rejected import ORIGIN_HEADER, REASON_CODE_HEADER, REASON_HEADER, rejection_headers


def test_headers_carry_the_reason_its_code_and_where_the_record_came_from() -> None:
    rejection = parse_record(b'{"event_id": "e1"}', now_ms=0)
    assert isinstance(rejection, Rejection)
    headers = dict(rejection_headers(rejection, "feed.jsonl:3"))
    assert headers[REASON_CODE_HEADER] == rejection.code.encode()
    assert headers[REASON_HEADER] == str(rejection).encode()
    assert headers[REASON_HEADER].startswith(rejection.code.encode())
    assert headers[ORIGIN_HEADER] == b"feed.jsonl:3"


def test_a_reason_without_detail_is_just_its_code() -> None:
    headers = dict(rejection_headers(Rejection("not_json"), "leadpulse.leads/0@7"))
    assert headers[REASON_HEADER] == b"not_json"
