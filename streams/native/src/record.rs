//! The check that routes a well-formed record without building its event.
//!
//! `route` answers only when it is sure: the record passes every rule of CONTRACT section 1
//! exactly as `streams.events.parse_record` applies them, and then it gives the record's topic
//! and key. Anything else (a rejection, or a form it does not read) is None, and Python's
//! `parse_record` decides, so every rejection reason keeps living in one place.
//! `tests/streams/ingest/test_routes.py` holds the two to that on arbitrary records.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

use crate::timestamp::timestamp_ms;
use crate::value::{Key, Value};

const MAX_RECORD_BYTES: usize = 64 * 1024;
const MAX_ID_CHARS: usize = 128;
const FUTURE_TOLERANCE_MS: i64 = 24 * 3600 * 1000;

/// Where a valid record goes: the topic of its type.
#[derive(Clone, Copy)]
pub enum Topic {
    Leads,
    Deals,
}

/// The event types, as far as the rules tell them apart.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Created,
    Qualified,
    Disqualified,
    Contacted,
    Deal,
}

impl Kind {
    fn parse(name: &str) -> Option<Kind> {
        Some(match name {
            "lead.created" => Kind::Created,
            "lead.qualified" => Kind::Qualified,
            "lead.disqualified" => Kind::Disqualified,
            "lead.contacted" => Kind::Contacted,
            "deal.created" | "deal.won" | "deal.lost" => Kind::Deal,
            _ => return None,
        })
    }
}

/// The fields the rules read; a name seen twice is left to Python (orjson keeps the last).
#[derive(Default)]
struct Fields<'a> {
    event_id: Option<Value<'a>>,
    kind: Option<Value<'a>>,
    occurred_at: Option<Value<'a>>,
    lead_id: Option<Value<'a>>,
    source: Option<Value<'a>>,
    campaign: Option<Value<'a>>,
    attributes: Option<Value<'a>>,
    stage: Option<Value<'a>>,
    reason: Option<Value<'a>>,
    deal_id: Option<Value<'a>>,
    amount: Option<Value<'a>>,
    channel: Option<Value<'a>>,
}

/// The topic and `lead_id` of `raw` when it is a valid record at `now_ms`, else None.
pub fn route(raw: &[u8], now_ms: i64) -> Option<(Topic, Cow<'_, str>)> {
    if raw.len() > MAX_RECORD_BYTES {
        return None;
    }
    let fields: Fields = serde_json::from_str(std::str::from_utf8(raw).ok()?).ok()?;
    let kind = Kind::parse(&text(fields.kind)?)?;
    identifier(fields.event_id)?;
    if timestamp_ms(&text(fields.occurred_at)?)? > now_ms + FUTURE_TOLERANCE_MS {
        return None;
    }
    let lead_id = identifier(fields.lead_id)?;
    let source_ok = if kind == Kind::Created { text(fields.source).is_some() } else { optional_text(&fields.source) };
    let attributes_ok = matches!(fields.attributes, None | Some(Value::Null | Value::Object { string_values: true }));
    let amount_ok = matches!(fields.amount, None | Some(Value::Null | Value::Number { non_negative: true }));
    let stage_ok = kind != Kind::Qualified || matches!(text(fields.stage).as_deref(), Some("mql" | "sql"));
    let deal_ok = kind != Kind::Deal || identifier(fields.deal_id).is_some();
    let channel_ok = kind != Kind::Contacted || optional_text(&fields.channel);
    let strings_ok = optional_text(&fields.campaign) && optional_text(&fields.reason);
    (source_ok && attributes_ok && amount_ok && stage_ok && deal_ok && channel_ok && strings_ok).then_some((if kind == Kind::Deal { Topic::Deals } else { Topic::Leads }, lead_id))
}

fn text(value: Option<Value<'_>>) -> Option<Cow<'_, str>> {
    match value {
        Some(Value::Text(text)) => Some(text),
        _ => None,
    }
}

/// Absent, null or a string: what Python's `_optional_string` lets through.
fn optional_text(value: &Option<Value<'_>>) -> bool {
    matches!(value, None | Some(Value::Null | Value::Text(_)))
}

/// A string of 1 to MAX_ID_CHARS characters (code points, as Python's `len`).
fn identifier(value: Option<Value<'_>>) -> Option<Cow<'_, str>> {
    text(value).filter(|id| !id.is_empty() && id.chars().count() <= MAX_ID_CHARS)
}

struct FieldsVisitor;

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FieldsVisitor)
    }
}

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Fields::default();
        while let Some(Key(name)) = map.next_key()? {
            let slot = match name.as_ref() {
                "event_id" => &mut fields.event_id,
                "type" => &mut fields.kind,
                "occurred_at" => &mut fields.occurred_at,
                "lead_id" => &mut fields.lead_id,
                "source" => &mut fields.source,
                "campaign" => &mut fields.campaign,
                "attributes" => &mut fields.attributes,
                "stage" => &mut fields.stage,
                "reason" => &mut fields.reason,
                "deal_id" => &mut fields.deal_id,
                "amount" => &mut fields.amount,
                "channel" => &mut fields.channel,
                _ => {
                    map.next_value::<Value>()?; // parsed all the same: orjson must find it valid too
                    continue;
                }
            };
            if slot.replace(map.next_value()?).is_some() {
                return Err(de::Error::custom("a field given twice"));
            }
        }
        Ok(fields)
    }
}
