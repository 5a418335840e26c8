"""The rejected-topic envelope: the raw record unchanged, the reason in Kafka headers.

Headers rather than a JSON wrapper keep the value byte-identical to what arrived, so
a fixed record can be re-sent as it is. `publish`, the ingest API and the workers all
use this one function, so consumers of `leadpulse.rejected` see one format.
"""

from __future__ import annotations

from streams.events import Rejection

REASON_HEADER = "leadpulse-reason"
REASON_CODE_HEADER = "leadpulse-reason-code"
ORIGIN_HEADER = "leadpulse-source"


def rejection_headers(rejection: Rejection, origin: str) -> list[tuple[str, bytes]]:
    """Headers for a rejected record; `origin` says where it came from (file:line, topic/partition@offset)."""
    return [
        (REASON_HEADER, str(rejection).encode()),
        (REASON_CODE_HEADER, rejection.code.encode()),
        (ORIGIN_HEADER, origin.encode()),
    ]
