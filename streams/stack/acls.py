"""The Kafka ACLs leadpulse needs, and granting them on the local stack's secured broker.

`grants` is the whole list, so the stack grants exactly what docs/operations.md asks a
cluster's admin for: the workers read the input topics in their consumer group and
write rejects; `publish` and the API write all three topics (their idempotent
producers need nothing more since Kafka 2.8: Write on a topic implies it); operators
read `leadpulse.rejected` to fix and re-send records; `rebuild` and the exporter's lag
reader describe the input topics and the group. Read and Write imply Describe.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from streams.settings import DEALS_TOPIC, LEADS_TOPIC, REJECTED_TOPIC, Settings
from streams.stack.errors import StackError


class Grant(NamedTuple):
    """One ACL: `operation` on the resource of `kind` named `name` (allow, any host)."""

    kind: str  # TOPIC or GROUP
    name: str
    operation: str  # READ, WRITE, DESCRIBE


def grants(settings: Settings) -> list[Grant]:
    """Every ACL leadpulse's principal needs, for the topics and the consumer group of `settings`."""
    return [
        *(Grant("TOPIC", topic, op) for topic in (LEADS_TOPIC, DEALS_TOPIC, REJECTED_TOPIC) for op in ("READ", "WRITE")),
        Grant("GROUP", settings.consumer_group, "READ"),
    ]


def grant(admin: Any, principal: str, wanted: list[Grant]) -> None:
    """Create `wanted` for `User:principal` through a super user's admin client (existing ones stay)."""
    from kafka.admin import ACL, ACLOperation, ACLPermissionType, ResourcePattern, ResourceType

    acls = [
        ACL(
            f"User:{principal}",
            "*",
            ACLOperation[g.operation],
            ACLPermissionType.ALLOW,
            ResourcePattern(ResourceType[g.kind], g.name),
        )
        for g in wanted
    ]
    result = admin.create_acls(acls)
    if result["failed"]:
        raise StackError(f"granting Kafka ACLs to User:{principal} failed: {result['failed'][0]}")
