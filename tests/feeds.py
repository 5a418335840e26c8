"""Synthetic raw feeds for pipeline tests and the benchmark: what a CRM export looks like.

Records are JSON bytes as they would sit on the topics: leads with stages, junk
disqualified, deals won and lost days later, orphan deals, re-sent duplicates, records
out of order and a share of malformed ones; with `touches`, sales touches too (minutes
to days after creation, a few before it, several per lead). Deterministic for a seed.
"""

from __future__ import annotations

import random
from datetime import datetime, timezone

import orjson

DAY_MS = 86_400_000
SOURCES = ("Organic Search", "paid_search", "Referral", "partners", "email", "Social Media")
CAMPAIGNS = ("Summer Launch", "Webinar Q2", "ABM Tier 1", "retargeting", None)
BAD_RECORDS = (
    b"{not json",
    b'{"event_id": "x", "type": "lead.created"}',
    b'{"event_id": "y", "type": "lead.exploded", "occurred_at": "2026-06-01T00:00:00Z", "lead_id": "L"}',
    b'{"event_id": "z", "type": "deal.won", "occurred_at": "yesterday", "lead_id": "L", "deal_id": "D"}',
    b"[1, 2, 3]",
    b"\xff\xfe",
)


def stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat().replace("+00:00", "Z")


def lead_records(rng: random.Random, lead: str, now_ms: int, tag: str, touches: bool = False) -> list[dict[str, object]]:
    """One lead's life: created, maybe touched, maybe qualified, maybe disqualified, maybe deals."""
    created = now_ms - rng.randrange(100 * DAY_MS)
    serial = iter(range(100))

    def record(kind: str, ms: int, **fields: object) -> dict[str, object]:
        return {"event_id": f"{tag}-{lead}-{next(serial)}", "type": kind, "occurred_at": stamp(min(ms, now_ms)),
                "lead_id": lead, **fields}

    def later(after: int, days: int) -> int:
        return after + rng.randrange(1, days * DAY_MS)

    campaign = rng.choice(CAMPAIGNS)
    created_fields: dict[str, object] = {"source": rng.choice(SOURCES),
                                         "attributes": {"persona": rng.choice(("CFO", "engineer", "ops"))}}
    if campaign is not None:
        created_fields["campaign"] = campaign
    out = [record("lead.created", created, **created_fields)]
    for _ in range(rng.choice((0, 1, 1, 2, 3)) if touches else 0):
        delay = rng.choice((-600_000, 60_000, 1_800_000, 3 * 3_600_000, DAY_MS, 5 * DAY_MS)) + rng.randrange(600_000)
        out.append(record("lead.contacted", created + delay, channel=rng.choice(("call", "email", "Meeting")),
                          attributes={"owner": rng.choice(("ana", "bo"))}))
    if rng.random() < 0.05:  # the same lead created twice: the earlier one wins
        out.append(record("lead.created", later(created, 3), source=rng.choice(SOURCES)))
    if rng.random() < 0.15:
        out.append(record("lead.disqualified", later(created, 5), reason="junk"))
    if rng.random() < 0.5:
        mql = later(created, 10)
        out.append(record("lead.qualified", mql, stage="mql"))
        if rng.random() < 0.5:
            out.append(record("lead.qualified", later(mql, 10), stage="sql"))
    for deal in range(rng.choice((0, 0, 1, 1, 2))):
        opened = later(created, 20)
        deal_id = f"{lead}-D{deal}"
        out.append(record("deal.created", opened, deal_id=deal_id, amount=rng.randrange(1, 100) * 100))
        for _ in range(rng.choice((1, 1, 2))):
            kind = "deal.won" if rng.random() < 0.35 else "deal.lost"
            fields: dict[str, object] = {"deal_id": deal_id}
            if kind == "deal.won" and rng.random() < 0.9:
                fields["amount"] = rng.randrange(1, 500) * 50
            out.append(record(kind, later(opened, 40), **fields))
    return out


def synthetic_feed(
    leads: int,
    now_ms: int,
    seed: int = 1,
    tag: str = "f",
    duplicate_share: float = 0.05,
    bad_share: float = 0.01,
    touches: bool = False,
) -> list[bytes]:
    """A shuffled feed of `leads` leads, with re-sent duplicates and malformed records mixed in."""
    rng = random.Random(seed)
    records = [r for n in range(leads) for r in lead_records(rng, f"{tag}L{n}", now_ms, tag, touches)]
    if leads:  # a won deal whose lead never arrives: an orphan
        records.append({"event_id": f"{tag}-orphan", "type": "deal.won", "occurred_at": stamp(now_ms - DAY_MS),
                        "lead_id": f"{tag}-ghost", "deal_id": f"{tag}-ghost-D"})
    raw = [orjson.dumps(r) for r in records]
    raw += rng.sample(raw, int(len(raw) * duplicate_share))
    raw += [rng.choice(BAD_RECORDS) for _ in range(int(len(raw) * bad_share))]
    rng.shuffle(raw)
    return raw
