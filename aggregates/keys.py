"""Where every aggregate lives in Redis: key names, hash tags, field names, counter slots.

The one place that spells the layout (docs/keys.md explains it): `apply.lua` receives
the key name parts from here, and `read.py` reads what it wrote. Every key a shard's
script touches carries the hash tag `{<prefix>:<shard>}`, so on Redis Cluster one shard
is one slot and its script stays legal.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from aggregates.rules import TOUCH_BOUNDS, TTC_BOUNDS
from streams.events import normalise_segment
from streams.settings import MAX_MATURITY_DAYS, Settings

ALL: Final = "all"
BUILTIN_DIMENSIONS: Final = (ALL, "source", "campaign")
OTHER_SEGMENT: Final = "other"

#: Name parts appended to a shard's base `<prefix>:{<prefix>:<shard>}:`.
LEAD_PART: Final = "l:"  # + bucket: hash `c<lead_id>` -> lead state, `d<i>|<lead_id>` -> its deals
COHORT_PART: Final = "c:"  # + cohort label: hash (dimension|segment) -> cohort vector
DAY_PART: Final = "d:"  # + UTC epoch day: hash (dimension|segment) -> day vector
LAG_PART: Final = "a:"  # + UTC epoch day of creation: hash (dimension|segment) -> customers by days to convert
AWAITING_PART: Final = "w:"  # + UTC epoch day of creation: hash (dimension|segment) -> times of day of leads awaiting touch
SEGMENTS_NAME: Final = "seg"  # hash (dimension|segment) -> all-time leads
HEALTH_NAME: Final = "g"  # hash: orphans, events|topic|type|outcome, last|topic
NAMES_NAME: Final = "n"  # hash: dimension|segment <-> small id, so lead state stays short
CALENDAR_NAME: Final = "cal"  # hash: UTC epoch day -> `week|month` cohort labels
OFFSETS_NAME: Final = "o"  # hash: topic|partition -> last Kafka offset whose records this shard holds,
FIRST_PREFIX: Final = "from|"  # and from|topic|partition -> the first (the log's start when it began)

#: Shards of a Redis Cluster when `LEADPULSE_SHARDS` is 0 (`auto_shards`).
CLUSTER_SHARDS: Final = 16

#: Lead state buckets over all shards, at least MIN_SHARD_BUCKETS per shard. A lead's
#: bucket follows from its id (`KeyLayout.place`); buckets keep Redis's compact listpack
#: encoding up to 128 fields, i.e. up to ~100 leads each: ~1.6 million live leads. Beyond
#: that they still work, as hashtables costing ~70 more bytes per lead. Part of the layout
#: fingerprint.
LEAD_BUCKETS: Final = 16384
MIN_SHARD_BUCKETS: Final = 1024

#: Longest conversion lag (whole days, rounded up) the lag vectors `a:` hold: slot k
#: counts the customers of the day's leads that converted more than k-1 and at most k
#: days (k x 24 h) after creation, k = 0..LAG_DAYS; a later conversion is in no slot.
#: It bounds the maturity ages (`LEADPULSE_MATURITY_AGES`). Part of the layout.
LAG_DAYS: Final = MAX_MATURITY_DAYS

ORPHANS_FIELD: Final = "orphans"
INVALID_TYPE: Final = "invalid"

#: Slots (0-based) of the comma-separated counter vectors; apply.lua writes the same
#: slots 1-based. A vector drops trailing zeros and writes a zero as an empty string.
COHORT_LEADS, COHORT_MQL, COHORT_SQL, COHORT_CUSTOMERS, COHORT_QUALIFIED, COHORT_DISQUALIFIED = range(6)
COHORT_SLOTS: Final = 6
(
    DAY_LEADS,  # leads created that day
    DAY_COHORT_CUSTOMERS,  # of those, customers (basis cohort)
    DAY_PERIOD_CUSTOMERS,  # leads converted that day (basis period)
    DAY_WON,  # deals closed won that day
    DAY_LOST,  # deals closed lost that day
    DAY_WON_CENTS,  # their won amount, integer cents
    DAY_TTC_SUM,  # sum of milliseconds to convert of that day's conversions
    DAY_TTC_BUCKET0,  # then one non-cumulative slot per histogram bucket, +Inf last
) = range(8)
#: Then (v1.2) the speed-to-lead histogram of the day's leads (sum of ms, one slot per
#: bucket), the open leads that reached mql (without sql) and sql (without a deal) that
#: day, and the follow-up outcomes of the day's leads: slot DAY_FOLLOW_UP0 + 4 x k (met),
#: + 1 (breached), + 2 and + 3 (the customers among the met and the breached) for the leads
#: whose deadline falls by the end of the k-th day after.
DAY_TOUCH_SUM: Final = DAY_TTC_BUCKET0 + len(TTC_BOUNDS) + 1
DAY_TOUCH_BUCKET0: Final = DAY_TOUCH_SUM + 1
DAY_STALL_MQL: Final = DAY_TOUCH_BUCKET0 + len(TOUCH_BOUNDS) + 1
DAY_STALL_SQL: Final = DAY_STALL_MQL + 1
DAY_FOLLOW_UP0: Final = DAY_STALL_SQL + 1
FOLLOW_UP_OUTCOMES: Final = ("met", "breached")
#: Slots per deadline day: each outcome's leads, then each outcome's customers.
FOLLOW_UP_SLOTS: Final = 2 * len(FOLLOW_UP_OUTCOMES)


def segment_field(dimension: str, segment: str) -> str:
    """Field of a (dimension, segment) pair; segments never contain `|` once normalised."""
    return f"{dimension}|{segment}"


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """The key layout of one pipeline (one `key_prefix`), derived from `Settings`."""

    prefix: str
    shards: int
    attribute_keys: tuple[str, ...]
    #: The settings each lead's stored touch deadline follows (SLA, hours, zone, holidays).
    follow_up: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyLayout:
        """Attribute keys are normalised like the events' own keys, so `Persona` matches."""
        keys = tuple(dict.fromkeys(normalise_segment(k) for k in settings.attribute_keys))
        clash = [k for k in keys if k in BUILTIN_DIMENSIONS]
        if clash:
            raise ValueError(
                f"attribute dimension(s) {clash} clash with built-in dimension names; "
                "rename them in LEADPULSE_ATTRIBUTE_DIMENSIONS"
            )
        if settings.shards < 0:
            raise ValueError("LEADPULSE_SHARDS must be 0 (automatic) or more")
        follow_up = "|".join(
            (settings.follow_up_sla, settings.business_hours or "", settings.business_timezone, settings.business_holidays)
        )
        return cls(settings.key_prefix, settings.shards or auto_shards(settings.redis_cluster), keys, follow_up)

    @property
    def dimensions(self) -> tuple[str, ...]:
        return BUILTIN_DIMENSIONS + self.attribute_keys

    @property
    def buckets(self) -> int:
        """Lead state buckets per shard."""
        return max(MIN_SHARD_BUCKETS, LEAD_BUCKETS // self.shards)

    @property
    def fingerprint(self) -> str:
        """What stored lead state depends on: changing it needs `leadpulse rebuild`."""
        return (
            f"v6;shards={self.shards};buckets={self.buckets};lags={LAG_DAYS};attributes={','.join(self.attribute_keys)}"
            f";follow_up={self.follow_up}"
        )

    def place(self, lead_id: str) -> tuple[int, int]:
        """(shard, bucket) of a lead: from one crc32, stable across processes unlike `hash`."""
        crc = zlib.crc32(lead_id.encode("utf-8"))
        return crc % self.shards, crc // self.shards % self.buckets

    def base(self, shard: int) -> str:
        return f"{self.prefix}:{{{self.prefix}:{shard}}}:"

    def leads(self, shard: int, bucket: int) -> str:
        """The bucket hash holding the state of the shard's leads placed in `bucket`."""
        return f"{self.base(shard)}{LEAD_PART}{bucket}"

    def cohorts(self, shard: int, labels: Iterable[str]) -> list[str]:
        """The cohort hashes of `labels` (a scrape names ~1,900 keys: the base is built once)."""
        prefix = f"{self.base(shard)}{COHORT_PART}"
        return [prefix + label for label in labels]

    def days(self, shard: int, days: Iterable[int]) -> list[str]:
        """The day hashes of UTC epoch `days`."""
        prefix = f"{self.base(shard)}{DAY_PART}"
        return [f"{prefix}{day}" for day in days]

    def lags(self, shard: int, days: Iterable[int]) -> list[str]:
        """The conversion-lag hashes of the leads created on UTC epoch `days`."""
        prefix = f"{self.base(shard)}{LAG_PART}"
        return [f"{prefix}{day}" for day in days]

    def awaiting(self, shard: int, days: Iterable[int]) -> list[str]:
        """The lists of leads awaiting touch among those created on UTC epoch `days`."""
        prefix = f"{self.base(shard)}{AWAITING_PART}"
        return [f"{prefix}{day}" for day in days]

    def segments(self, shard: int) -> str:
        return f"{self.base(shard)}{SEGMENTS_NAME}"

    def names(self, shard: int) -> str:
        return f"{self.base(shard)}{NAMES_NAME}"

    def health(self, shard: int) -> str:
        return f"{self.base(shard)}{HEALTH_NAME}"

    def offsets(self, shard: int) -> str:
        """Applied Kafka offsets of the shard, field `topic|partition`: in the shard's slot, so
        on a Cluster they live, persist and fail over with the counters they cover."""
        return f"{self.base(shard)}{OFFSETS_NAME}"

    @property
    def layout_stamp(self) -> str:
        return f"{self.prefix}:layout"

    @property
    def shard_key_pattern(self) -> str:
        """SCAN pattern of every shard key of this prefix and of no other prefix."""
        prefix = _glob_escape(self.prefix)
        return f"{prefix}:{{{prefix}:[0-9]*}}:*"


def auto_shards(cluster: bool) -> int:
    """Shards when `LEADPULSE_SHARDS` is 0: on one server shards buy nothing and multiply the
    counter keys a batch writes and a scrape sums; on a Cluster they spread the work over
    the masters (a shard is one hash slot, so 16 covers up to 16 masters)."""
    return CLUSTER_SHARDS if cluster else 1


def verify_key(prefix: str) -> str:
    """The last `leadpulse verify` result of a prefix (outside the shards: `rebuild` keeps it)."""
    return f"{prefix}:verify"


#: Fields of `verify_key`, each published as `leadpulse_verify_<field>` by the exporter.
VERIFY_FIELDS: Final = ("mismatched_series", "checked_events", "last_success_timestamp_seconds")


def health_field(topic: str, event_type: str, outcome: str) -> str:
    return f"events|{topic}|{event_type}|{outcome}"


def last_field(topic: str) -> str:
    return f"last|{topic}"


def as_text(value: bytes | str | None) -> str:
    """A reply as text, whether or not the client decodes responses (None becomes "")."""
    if value is None:
        return ""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _glob_escape(text: str) -> str:
    return "".join(f"\\{ch}" if ch in "*?[]\\" else ch for ch in text)
