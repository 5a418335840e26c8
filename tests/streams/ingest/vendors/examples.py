"""Vendors' own published examples: signing test vectors and payloads, each with its source.

Copied as published (bodies byte for byte where a signature depends on them); the tests
say what leadpulse must make of each.
"""

from __future__ import annotations

from typing import Any, Final

# --- HubSpot -----------------------------------------------------------------------------

# HubSpot developer docs, "Validating requests from HubSpot" / "v1 request validation"
# (developers.hubspot.com/docs/api/webhooks/validating-requests, .../faq/v1-request-validation):
# "Example for a request with a body". The body is a real contact.creation notification batch.
HUBSPOT_DOCS_SECRET: Final = b"yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
HUBSPOT_DOCS_V1_BODY: Final = (
    b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
    b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",'
    b'"changeFlag":"NEW","appId":54321}]'
)
HUBSPOT_DOCS_V1_HASH: Final = "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
# Same docs, "v2 request validation" (developers.hubspot.com/docs/faq/v2-request-validation):
# "Example for a GET request".
HUBSPOT_DOCS_V2_URI: Final = "https://www.example.com/webhook_uri"
HUBSPOT_DOCS_V2_GET_HASH: Final = "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"

# HubSpot's official Python client, tests/spec/utils/test_signature.py
# (github.com/HubSpot/hubspot-api-python): its fixed vectors for v1, v2 and v3 over one POST.
HUBSPOT_SDK_BODY: Final = b"{'example_field':'example_value'}"
HUBSPOT_SDK_TIMESTAMP: Final = "15000000"
HUBSPOT_SDK_V1: Final = "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750"
HUBSPOT_SDK_V2: Final = "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383"
HUBSPOT_SDK_V3: Final = "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw="

# --- Segment -----------------------------------------------------------------------------

# Segment docs, "Spec: Identify", "Here's a complete example of an identify call"
# (segment.com/docs/connections/spec/identify/; segmentio/segment-docs src/connections/spec/identify.md).
SEGMENT_SPEC_IDENTIFY: Final[dict[str, Any]] = {
    "anonymousId": "507f191e810c19729de860ea",
    "channel": "browser",
    "context": {
        "ip": "8.8.8.8",
        "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_5) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/40.0.2214.115 Safari/537.36",
    },
    "integrations": {"All": False, "Mixpanel": True, "Salesforce": True},
    "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093db",
    "receivedAt": "2015-02-23T22:28:55.387Z",
    "sentAt": "2015-02-23T22:28:55.111Z",
    "timestamp": "2015-02-23T22:28:55.111Z",
    "traits": {
        "name": "Peter Gibbons",
        "email": "peter@example.com",
        "plan": "premium",
        "logins": 5,
        "address": {"street": "6th St", "city": "San Francisco", "state": "CA", "postalCode": "94103", "country": "USA"},
    },
    "type": "identify",
    "userId": "97980cfea0067",
    "version": "1.1",
}  # fmt: skip
# Segment docs, "Spec: Track", "Here's a complete example of a track call"
# (segment.com/docs/connections/spec/track/; segmentio/segment-docs src/connections/spec/track.md).
SEGMENT_SPEC_TRACK: Final[dict[str, Any]] = {
    "anonymousId": "23adfd82-aa0f-45a7-a756-24f2a7a4c895",
    "context": {
        "library": {"name": "analytics.js", "version": "2.11.1"},
        "page": {"path": "/academy/", "referrer": "", "search": "", "title": "Analytics Academy",
                 "url": "https://segment.com/academy/"},
        "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/46.0.2490.86 Safari/537.36",
        "ip": "108.0.78.21",
    },
    "event": "Course Clicked",
    "integrations": {},
    "messageId": "ajs-f8ca1e4de5024d9430b3928bd8ac6b96",
    "properties": {"title": "Intro to Analytics"},
    "receivedAt": "2015-12-12T19:11:01.266Z",
    "sentAt": "2015-12-12T19:11:01.169Z",
    "timestamp": "2015-12-12T19:11:01.249Z",
    "type": "track",
    "userId": "AiUGstSDIg",
    "originalTimestamp": "2015-12-12T19:11:01.152Z",
}  # fmt: skip
# Segment docs, "Spec: Common Fields", context.campaign: the UTM parameters as Segment names them
# (segment.com/docs/connections/spec/common/#context).
SEGMENT_SPEC_CAMPAIGN: Final = {"name": "TPS Innovation Newsletter", "source": "Newsletter", "medium": "email",
                                "term": "tps reports", "content": "image link"}  # fmt: skip
# Segment docs, "Webhooks Destination", Appendices, Authentication
# (segment.com/docs/connections/destinations/catalog/webhooks/): "We calculate a SHA1 digest
# using the shared secret and the JSON-stringified body of the request", compared as hex.
