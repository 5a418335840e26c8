"""Compare live aggregates with a recount: series by name and labels, lead state by lead.

Pure: `leadpulse verify` (streams/worker/verify.py) reads both sides and hands them
over. Lead state is compared in a canonical form, because two correct stores of the
same events differ in three harmless ways: the day of last change (the recount's is
today), the small ids of segment names (interned in the order each store met them),
and the order of a lead's deals (the order their events arrived).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import msgpack

from aggregates.series import Series

#: A created lead's core holds its segment name ids from here (0-based), then its touch
#: deadline: see apply.lua.
_FIRST_SEGMENT: Final = 9


class Mismatch(NamedTuple):
    """A series whose live value differs from the recount; None where one side lacks it."""

    name: str
    labels: dict[str, str]
    live: float | None
    recounted: float | None

    def __str__(self) -> str:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        return f"{self.name}{{{labels}}} live {_shown(self.live)} recounted {_shown(self.recounted)}"


class LeadMismatch(NamedTuple):
    """A lead whose stored state differs from the recount's (canonical forms; None: absent)."""

    lead_id: str
    live: tuple[Any, ...] | None
    recounted: tuple[Any, ...] | None

    def __str__(self) -> str:
        return f"lead state {self.lead_id!r} live {_shown(self.live)} recounted {_shown(self.recounted)}"


def compare_series(live: Iterable[Series], recounted: Iterable[Series]) -> list[Mismatch]:
    """Every series whose value differs, or that only one side has, in name-then-labels order."""
    mine = {s.sort_key(): s for s in live}
    theirs = {s.sort_key(): s for s in recounted}
    out = []
    for key in sorted(mine.keys() | theirs.keys()):
        a, b = mine.get(key), theirs.get(key)
        if a is None or b is None or a.value != b.value:
            labels = (a or b).labels  # type: ignore[union-attr]  # one of them is there
            out.append(Mismatch(key[0], labels, None if a is None else a.value, None if b is None else b.value))
    return out


@dataclass(frozen=True, slots=True)
class Buckets:
    """Lead state as stored in some bucket hashes of one shard, with that shard's names dictionary."""

    names: Mapping[bytes, bytes]  # the shard's `n` hash
    flats: Sequence[Sequence[bytes]]  # HGETALL replies of the bucket hashes

    def leads(self) -> dict[str, tuple[Any, ...]]:
        """Each lead's canonical state: core (last-change day dropped, segment names for
        ids), then its deals sorted."""
        cores: dict[str, list[Any]] = {}
        deals: dict[str, list[tuple[Any, ...]]] = {}
        for flat in self.flats:
            for field, value in zip(flat[::2], flat[1::2]):
                if field[:1] == b"c":
                    cores[field[1:].decode()] = _frozen(msgpack.unpackb(value[2:], raw=True, strict_map_key=False))
                else:
                    lead = field.partition(b"|")[2].decode()
                    deals.setdefault(lead, []).append(_frozen(msgpack.unpackb(value, raw=True, strict_map_key=False)))
        out: dict[str, tuple[Any, ...]] = {}
        for lead in cores.keys() | deals.keys():
            core = cores.get(lead, [])
            named = list(core)
            if len(core) > _FIRST_SEGMENT:  # created: segment names for their ids
                ids = core[_FIRST_SEGMENT:-1]
                named[_FIRST_SEGMENT:-1] = [self.names.get(b"#%d" % i, b"?") for i in ids]
            out[lead] = (tuple(named), tuple(sorted(deals.get(lead, []), key=repr)))
        return out


def compare_leads(live: Buckets, recounted: Buckets) -> list[LeadMismatch]:
    """Every lead whose canonical state differs, or that only one side holds, by lead id."""
    mine, theirs = live.leads(), recounted.leads()
    return [
        LeadMismatch(lead, mine.get(lead), theirs.get(lead))
        for lead in sorted(mine.keys() | theirs.keys())
        if mine.get(lead) != theirs.get(lead)
    ]


def _frozen(value: Any) -> Any:
    """msgpack's lists as tuples (comparable, hashable), the rest as they are."""
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else value


def _shown(value: object) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
