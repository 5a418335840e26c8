#!lua
-- Apply a batch of events of ONE shard: per-lead state as a join-semilattice, then
-- counters moved by the exact difference of each touched lead's contribution.
--
-- Why this is exact: every event only ever moves a lead's state upwards in a lattice
-- (earliest created, highest stage, dq flag, earliest conversion, per deal the max of
-- (time, won>lost, amount)), so the state is a function of the SET of events, and the
-- counters always equal the sum of the contributions of the stored states. A re-sent
-- event changes no state, hence no counter. See docs/keys.md.
--
-- KEYS[1]: the shard's health hash `<base>g`, KEYS[2] its offsets hash `<base>o`; every
--   key touched shares its hash tag.
-- ARGV[1..18]: base, lead retention (days), lead buckets per shard, key parts
--   lead/cohort/day/segments/names/calendar/lag, leads topic, deals topic, histogram
--   bounds (csv, milliseconds), attribute dimension keys (csv), longest stored lag
--   (days), first-touch histogram bounds (csv, milliseconds), key part of the awaiting
--   lists, today (UTC epoch day, the worker's clock).
-- ARGV[19]: the events as one msgpack array, each a code then its fields (bucket: the
--   lead's bucket as text, from aggregates/keys.py; ms, stage and cents are integers):
--   c bucket lead ms event_id week month deadline source campaign attr...   (lead.created)
--   (event_id as lead state stores it: see below; deadline: ms after `ms` at which the
--   follow-up SLA of a lead created then runs out, computed by the worker)
--   q bucket lead ms stage(1|2)                                     (lead.qualified)
--   x bucket lead ms                                                (lead.disqualified)
--   t bucket lead ms                                                (lead.contacted)
--   d bucket lead ms                                                (deal.created)
--   w bucket lead ms deal cents                                     (deal.won)
--   l bucket lead ms deal                                           (deal.lost)
-- ARGV[20..]: the batch's offset quadruples (advance.lua), moved after the events, in the
--   same atomic call: nobody ever sees the shard's counters without their offsets.
-- Returns {applied, duplicate, refused offsets (as advance.lua)}.

local DAY_MS = 86400000
local floor = math.floor
local find, sub, byte, format = string.find, string.sub, string.byte, string.format
local base, retention, buckets = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local LEADS, COHORT, DAY, SEGMENTS = base .. ARGV[4], base .. ARGV[5], base .. ARGV[6], base .. ARGV[7]
local NAMES, CALENDAR, LAG, HEALTH = base .. ARGV[8], base .. ARGV[9], base .. ARGV[10], KEYS[1]
local TOPIC = {c = ARGV[11], q = ARGV[11], x = ARGV[11], t = ARGV[11], d = ARGV[12], w = ARGV[12], l = ARGV[12]}
local TYPE = {c = 'lead.created', q = 'lead.qualified', x = 'lead.disqualified', t = 'lead.contacted',
  d = 'deal.created', w = 'deal.won', l = 'deal.lost'}

local bounds = {}
for b in string.gmatch(ARGV[13], '[^,]+') do bounds[#bounds + 1] = tonumber(b) end
local dims = {'all', 'source', 'campaign'}
for k in string.gmatch(ARGV[14], '[^,]+') do dims[#dims + 1] = k end
local nseg = #dims - 1 -- stored segments: source, campaign, attributes
local touch_bounds = {}
for b in string.gmatch(ARGV[16], '[^,]+') do touch_bounds[#touch_bounds + 1] = tonumber(b) end
local max_lag, AWAITING, today = tonumber(ARGV[15]), base .. ARGV[17], tonumber(ARGV[18])

-- Counter slots (1-based); aggregates/keys.py names the same slots 0-based.
local D_LEADS, D_CCUST, D_PCUST, D_WON, D_LOST, D_CENTS, D_TTC_SUM, D_BUCKET0 = 1, 2, 3, 4, 5, 6, 7, 8
-- Then the first-touch histogram (sum, buckets), the stalled candidates and the
-- follow-up outcomes by deadline day (four slots per day after creation: met, breached,
-- then the customers among them).
local D_TOUCH_SUM = D_BUCKET0 + #bounds + 1
local D_TOUCH0 = D_TOUCH_SUM + 1
local D_STALL_MQL = D_TOUCH0 + #touch_bounds + 1
local D_STALL_SQL, D_FOLLOW_UP0 = D_STALL_MQL + 1, D_STALL_MQL + 2

-- Byte-wise string order, as Python compares str: Lua's `<` uses strcoll, and Redis
-- sets LC_COLLATE from its environment.
local function less(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- Per-shard dictionaries keep repeated strings out of the per-lead state (memory):
-- NAMES interns each `dimension|segment` (the counter field name) as a small id,
-- `#<id>` maps back, `#` is the last id given; CALENDAR maps a UTC epoch day to
-- `week|month`, the cohort labels Python computed when a lead was created that day.
local name_ids, id_names, labels = {}, {}, {}

local function intern(name)
  local id = name_ids[name]
  if id then return id end
  id = tonumber(redis.call('HGET', NAMES, name))
  if not id then
    id = redis.call('HINCRBY', NAMES, '#', 1)
    redis.call('HSET', NAMES, name, id, '#' .. id, name)
  end
  name_ids[name], id_names[id] = id, name
  return id
end

local function name_of(id)
  local name = id_names[id]
  if not name then
    name = redis.call('HGET', NAMES, '#' .. id)
    id_names[id], name_ids[name] = name, id
  end
  return name
end

local function labels_of(day)
  local pair = labels[day]
  if not pair then
    local week, month = string.match(redis.call('HGET', CALENDAR, day), '^(.-)|(.*)$')
    pair = {week, month}
    labels[day] = pair
  end
  return pair
end

-- Lead state lives in the shard's bucket hashes `l:<bucket>` (small enough for Redis's
-- compact listpack encoding, which needs fields and values of at most 64 bytes):
--   field 'c' .. lead: the core, 2 bytes (big-endian) of the UTC epoch day of its last
--     change, then msgpack {q, dq, conv|false, deal count, [created ms, event_id,
--     segment name id...]} (the tail only once created);
--   field 'd' .. i .. '|' .. lead: its i-th closed deal, msgpack {deal, ms, won, cents}.
--     One field per deal keeps every value short however many deals a lead has.
-- A canonical lowercase UUID event_id is stored as {its 16 bytes} (a table, so it cannot
-- be mistaken for another id), and the worker sends it so (`stored_event_id` in
-- aggregates/store.py); ties are broken on the id as sent, rebuilt when needed.

local function sent_id(stored)
  if type(stored) == 'string' then return stored end
  local hex = string.format('%08x%08x%08x%08x', struct.unpack('>I4I4I4I4', stored[1]))
  return string.sub(hex, 1, 8) .. '-' .. string.sub(hex, 9, 12) .. '-' .. string.sub(hex, 13, 16) .. '-'
    .. string.sub(hex, 17, 20) .. '-' .. string.sub(hex, 21)
end

local function deal_field(i, id) return 'd' .. i .. '|' .. id end

local function changed_on(core) return string.byte(core, 1) * 256 + string.byte(core, 2) end

-- A lead's state in this script is the stored core's own array, unpacked:
--   {mql ms|false, disqualified ms|false, conv|false, deal count, sql ms|false,
--    first touch ms|false, any deal event (0|1)[, created ms, event_id, segment name id...,
--    deadline ms after creation]}
-- Each time is the earliest of its events (mql: a qualification to mql or sql).
-- so it is stored again as it is (no tables to build or take apart per lead); its deals
-- are a map of deal id to {ms, won, cents, index, dirty}. `before` is the array as
-- loaded; events change a copy, and the deal map only once a deal event comes
-- (`entry.deals` is `entry.bdeals` until then).
local MQL, DQ, CONV, SQL, TOUCH, DEALT = 1, 2, 3, 5, 6, 7
local CORE_MS, CORE_EID = 8, 9 -- the creation's slots; segment ids and the deadline follow
local DEADLINE = CORE_EID + nseg + 1
local NEW_LEAD, NO_DEALS = {false, false, false, 0, false, false, 0}, {} -- shared, never written: changes go to copies
local CHANGED_TODAY = string.char(floor(today / 256), today % 256)

local function encode_core(st) return CHANGED_TODAY .. cmsgpack.pack(st) end

local function own_deals(entry)
  local deals = {}
  for id, d in pairs(entry.bdeals) do deals[id] = d end
  entry.deals = deals
  return deals
end

-- Pending counter deltas of this call: vectors[key][field][slot], ints[key][field], and
-- awaiting lists lists[key][field][entry] (entries counted, + or -).
local vectors, ints, lists = {}, {}, {}

-- Add slots (a sparse {slot = value}) to the pending vector of key/field. A new vector
-- is built as `{nil x 8}`, which gives it an array part for slots 1-8 (a cohort's six, a
-- day's first eight) at once: an empty table rehashed at each new slot (~1% of the
-- script's instructions), and `pairs` still skips the nils.
local function add(key, field, slots)
  local fields = vectors[key]
  if not fields then fields = {}; vectors[key] = fields end
  local vec = fields[field]
  if not vec then vec = {nil, nil, nil, nil, nil, nil, nil, nil}; fields[field] = vec end
  for slot, v in pairs(slots) do if v ~= 0 then vec[slot] = (vec[slot] or 0) + v end end
end

local function incr(key, field, delta)
  local fields = ints[key]
  if not fields then fields = {}; ints[key] = fields end
  fields[field] = (fields[field] or 0) + delta
end

local function bucket_of(ms, within)
  within = within or bounds
  for i, b in ipairs(within) do if ms <= b then return i end end
  return #within + 1
end

-- Key names, each built once per call.
local day_keys, lag_keys, cohort_keys = {}, {}, {}
local function day_key(day, cache, part)
  cache, part = cache or day_keys, part or DAY
  local key = cache[day]
  if not key then key = part .. day; cache[day] = key end
  return key
end

-- Pending deltas per segment tuple (the leads of a batch share a few), fanned out to the
-- tuple's counter fields once, at the end: {ids, seg = leads, keys = {key = slots},
-- lists = {key = {entry = count}}}, in
-- `all_tuples` and found by ids in `tuples`.
-- A lead whose creation changed has its old contribution taken off and its new one added,
-- cancelling in the tuple's sums; one whose creation stands adds only what moved (`move`).
local tuples, all_tuples = {}, {}

local function bump(keys, key, slot, v)
  local vec = keys[key]
  if not vec then vec = {nil, nil, nil, nil, nil, nil, nil, nil}; keys[key] = vec end
  vec[slot] = (vec[slot] or 0) + v
end

-- The tuple of a state's segment ids, found through one nested table per id: a string
-- key of the ids would format each number (printf) for every lead.
local function tuple_of(st)
  local level = tuples
  for j = CORE_EID + 1, CORE_EID + nseg - 1 do
    local id = st[j]
    local next_level = level[id]
    if not next_level then next_level = {}; level[id] = next_level end
    level = next_level
  end
  local last_id = st[CORE_EID + nseg]
  local t = level[last_id]
  if not t then
    local ids = {}
    for j = 1, nseg do ids[j] = st[CORE_EID + j] end
    t = {ids = ids, seg = 0, keys = {}, lists = {}}
    level[last_id] = t
    all_tuples[#all_tuples + 1] = t
  end
  return t
end

local function cohorts_of(day)
  local cohorts = cohort_keys[day]
  if not cohorts then
    local pair = labels_of(day)
    cohorts = {COHORT .. pair[1], COHORT .. pair[2]}
    cohort_keys[day] = cohorts
  end
  return cohorts
end

-- A state's cohort slots 2-6 (mql, sql, customer, open, disqualified), each 1 or 0;
-- slot 1 (leads) is always 1.
local function flags(st)
  local cust = st[CONV] and 1 or 0
  local mql = (st[MQL] or cust == 1) and 1 or 0
  local disq = (st[DQ] and cust == 0) and 1 or 0
  return mql, (st[SQL] or cust == 1) and 1 or 0, cust, (mql == 1 and disq == 0) and 1 or 0, disq
end

local function conversion(keys, created, conv, sign)
  local ttc = math.max(0, conv - created) -- milliseconds: exact, and seconds on /metrics
  local key = day_key(floor(conv / DAY_MS))
  bump(keys, key, D_PCUST, sign)
  bump(keys, key, D_TTC_SUM, sign * ttc)
  bump(keys, key, D_BUCKET0 + bucket_of(ttc) - 1, sign)
  -- The conversion lag in whole days rounded up (converted within k x 24 h), slot k + 1
  -- of the creation day's lag vector: the matured series and the alerts read it.
  local lag = math.ceil(ttc / DAY_MS)
  if lag <= max_lag then
    bump(keys, day_key(floor(created / DAY_MS), lag_keys, LAG), lag + 1, sign)
  end
end

local function deal(keys, d, sign)
  local key = day_key(floor(d[1] / DAY_MS))
  if d[2] == 1 then
    bump(keys, key, D_WON, sign)
    bump(keys, key, D_CENTS, sign * d[3])
  else
    bump(keys, key, D_LOST, sign)
  end
end

-- Continued in apply_follow_up.lua: the contribution of a lead, follow-up included.
