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
-- ARGV[1..16]: base, lead retention (days), lead buckets per shard, key parts
--   lead/cohort/day/segments/names/calendar/lag, leads topic, deals topic, histogram
--   bounds (csv, milliseconds), attribute dimension keys (csv), longest stored lag
--   (days), today (UTC epoch day, the worker's clock).
-- ARGV[17]: the events as one msgpack array, each a code then its fields (bucket: the
--   lead's bucket as text, from aggregates/keys.py; ms, stage and cents are integers):
--   c bucket lead ms event_id week month source campaign attr...   (lead.created)
--   (event_id as lead state stores it: see below)
--   q bucket lead ms stage(1|2)                                     (lead.qualified)
--   x bucket lead ms                                                (lead.disqualified)
--   d ms                                                            (deal.created)
--   w bucket lead ms deal cents                                     (deal.won)
--   l bucket lead ms deal                                           (deal.lost)
-- ARGV[18..]: the batch's offset quadruples (advance.lua), moved after the events, in the
--   same atomic call: nobody ever sees the shard's counters without their offsets.
-- Returns {applied, duplicate, refused offsets (as advance.lua)}.

local DAY_MS = 86400000
local floor = math.floor
local find, sub, byte, format = string.find, string.sub, string.byte, string.format
local base, retention, buckets = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local LEADS, COHORT, DAY, SEGMENTS = base .. ARGV[4], base .. ARGV[5], base .. ARGV[6], base .. ARGV[7]
local NAMES, CALENDAR, LAG, HEALTH = base .. ARGV[8], base .. ARGV[9], base .. ARGV[10], KEYS[1]
local TOPIC = {c = ARGV[11], q = ARGV[11], x = ARGV[11], d = ARGV[12], w = ARGV[12], l = ARGV[12]}
local TYPE = {c = 'lead.created', q = 'lead.qualified', x = 'lead.disqualified',
  d = 'deal.created', w = 'deal.won', l = 'deal.lost'}

local bounds = {}
for b in string.gmatch(ARGV[13], '[^,]+') do bounds[#bounds + 1] = tonumber(b) end
local dims = {'all', 'source', 'campaign'}
for k in string.gmatch(ARGV[14], '[^,]+') do dims[#dims + 1] = k end
local nseg = #dims - 1 -- stored segments: source, campaign, attributes
local max_lag, today = tonumber(ARGV[15]), tonumber(ARGV[16])

-- Counter slots (1-based); aggregates/keys.py names the same slots 0-based.
local D_LEADS, D_CCUST, D_PCUST, D_WON, D_LOST, D_CENTS, D_TTC_SUM, D_BUCKET0 = 1, 2, 3, 4, 5, 6, 7, 8

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
--   {q, dq, conv|false, deal count[, created ms, event_id, segment name id...]}
-- so it is stored again as it is (no tables to build or take apart per lead); its deals
-- are a map of deal id to {ms, won, cents, index, dirty}. `before` is the array as
-- loaded; events change a copy, and the deal map only once a deal event comes
-- (`entry.deals` is `entry.bdeals` until then).
local CORE_MS, CORE_EID = 5, 6 -- the creation's slots; segment ids follow
local NEW_LEAD, NO_DEALS = {0, 0, false, 0}, {} -- shared, never written: changes go to copies
local CHANGED_TODAY = string.char(floor(today / 256), today % 256)

local function encode_core(st) return CHANGED_TODAY .. cmsgpack.pack(st) end

local function own_deals(entry)
  local deals = {}
  for id, d in pairs(entry.bdeals) do deals[id] = d end
  entry.deals = deals
  return deals
end

-- Pending counter deltas of this call: vectors[key][field][slot], ints[key][field].
local vectors, ints = {}, {}

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

local function bucket_of(ms)
  for i, b in ipairs(bounds) do if ms <= b then return i end end
  return #bounds + 1
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
-- tuple's counter fields once, at the end: {ids, seg = leads, keys = {key = slots}}, in
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
    t = {ids = ids, seg = 0, keys = {}}
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
  local q, cust = st[1], st[3] and 1 or 0
  local mql = (q >= 1 or cust == 1) and 1 or 0
  local disq = (st[2] == 1 and cust == 0) and 1 or 0
  return mql, (q >= 2 or cust == 1) and 1 or 0, cust, (mql == 1 and disq == 0) and 1 or 0, disq
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

-- Add `sign` times a lead's contribution (the same for each of its segments) to its tuple.
-- Added straight into the tuple's sums: no table per contribution.
local function contribute(st, deals, sign)
  local created = st[CORE_MS]
  if not created then
    incr(HEALTH, 'orphans', sign * st[4])
    return
  end
  local t = tuple_of(st)
  t.seg = t.seg + sign
  local keys, day = t.keys, floor(created / DAY_MS)
  local mql, sql, cust, open, disq = flags(st)
  local key = day_key(day)
  bump(keys, key, D_LEADS, sign)
  if cust == 1 then bump(keys, key, D_CCUST, sign) end
  local cohorts = cohorts_of(day)
  for k = 1, 2 do
    key = cohorts[k]
    bump(keys, key, 1, sign)
    if mql == 1 then bump(keys, key, 2, sign) end
    if sql == 1 then bump(keys, key, 3, sign) end
    if cust == 1 then bump(keys, key, 4, sign) end
    if open == 1 then bump(keys, key, 5, sign) end
    if disq == 1 then bump(keys, key, 6, sign) end
  end
  if st[3] then conversion(keys, created, st[3], sign) end
  for _, d in pairs(deals) do deal(keys, d, sign) end
end

-- A lead whose creation stands (no event of this call replaced it): its tuple, day and
-- cohorts stay, so only what moved is added: the same sums as `before` taken off and
-- `st` added, in a few additions rather than two whole contributions.
local function move(entry)
  local before, st = entry.before, entry.st
  local created = st[CORE_MS]
  local keys, day = tuple_of(st).keys, floor(created / DAY_MS)
  local b2, b3, b4, b5, b6 = flags(before)
  local a2, a3, a4, a5, a6 = flags(st)
  if a4 ~= b4 then bump(keys, day_key(day), D_CCUST, a4 - b4) end
  if a2 ~= b2 or a3 ~= b3 or a4 ~= b4 or a5 ~= b5 or a6 ~= b6 then
    local cohorts = cohorts_of(day)
    for k = 1, 2 do
      local key = cohorts[k]
      if a2 ~= b2 then bump(keys, key, 2, a2 - b2) end
      if a3 ~= b3 then bump(keys, key, 3, a3 - b3) end
      if a4 ~= b4 then bump(keys, key, 4, a4 - b4) end
      if a5 ~= b5 then bump(keys, key, 5, a5 - b5) end
      if a6 ~= b6 then bump(keys, key, 6, a6 - b6) end
    end
  end
  if before[3] ~= st[3] then
    if before[3] then conversion(keys, created, before[3], -1) end
    if st[3] then conversion(keys, created, st[3], 1) end
  end
  if entry.deals ~= entry.bdeals then -- a deal event came; deals are only ever added or replaced whole
    local old_deals = entry.bdeals
    for id, d in pairs(entry.deals) do
      local old = old_deals[id]
      if old ~= d then
        if old then deal(keys, old, -1) end
        deal(keys, d, 1)
      end
    end
  end
end

local leads = {}
local function lead(bucket, id)
  local entry = leads[id]
  if not entry then
    local key, field = LEADS .. bucket, 'c' .. id
    local raw, core, deals = redis.call('HGET', key, field), NEW_LEAD, NO_DEALS
    if raw then
      core = select(2, cmsgpack.unpack_one(raw, 2)) -- after the 2-byte day, without a copy
      if core[4] > 0 then
        local fields = {}
        deals = {}
        for i = 1, core[4] do fields[i] = deal_field(i, id) end
        for i, packed in ipairs(redis.call('HMGET', key, unpack(fields))) do
          local d = cmsgpack.unpack(packed)
          deals[d[1]] = {d[2], d[3], d[4], i, false}
        end
      end
    end
    entry = {key = key, field = field, before = core, st = {unpack(core)}, bdeals = deals, deals = deals,
      created = false, changed = false}
    leads[id] = entry
  end
  return entry
end

-- Per event only a count by code; the health fields are named once per code below.
local applied, duplicate, last, seen = 0, 0, {}, {}
local new_days = {} -- created days whose labels this call brought, for `cal` (below)
local E = cmsgpack.unpack(ARGV[17])
local i, n = 1, #E
while i <= n do
  local code, ms, changed = E[i], nil, false
  if code == 'd' then
    ms, changed = E[i + 1], true -- carries no state: cannot be a re-send
    i = i + 2
  else
    local entry = lead(E[i + 1], E[i + 2])
    local st = entry.st
    ms = E[i + 3]
    if code == 'c' then
      local eid, created = E[i + 4], st[CORE_MS]
      if not created or ms < created or (ms == created and less(sent_id(eid), sent_id(st[CORE_EID]))) then
        local day = floor(ms / DAY_MS)
        st[CORE_MS], st[CORE_EID] = ms, eid
        for j = 1, nseg do st[CORE_EID + j] = intern(dims[j + 1] .. '|' .. E[i + 6 + j]) end
        entry.created, changed = true, true
        if not labels[day] then
          labels[day] = {E[i + 5], E[i + 6]}
          new_days[#new_days + 1] = day
        end
      end
      i = i + 7 + nseg
    elseif code == 'q' then
      local q = E[i + 4]
      if q > st[1] then st[1], changed = q, true end
      i = i + 5
    elseif code == 'x' then
      if st[2] == 0 then st[2], changed = 1, true end
      i = i + 4
    else -- 'w' or 'l'
      local deal, won = E[i + 4], (code == 'w') and 1 or 0
      local cents = (won == 1) and E[i + 5] or 0
      if won == 1 and (not st[3] or ms < st[3]) then st[3], changed = ms, true end
      local d = entry.deals[deal]
      if not d or ms > d[1] or (ms == d[1] and (won > d[2] or (won == d[2] and cents > d[3]))) then
        local index = d and d[4]
        if not index then st[4] = st[4] + 1; index = st[4] end
        local deals = entry.deals
        if deals == entry.bdeals then deals = own_deals(entry) end
        deals[deal], changed = {ms, won, cents, index, true}, true
      end
      i = i + 5 + won
    end
    if changed then entry.changed = true end
  end
  local topic = TOPIC[code]
  if changed then
    applied = applied + 1
    if not last[topic] or ms > last[topic] then last[topic] = ms end
  else
    duplicate = duplicate + 1
  end
  local outcome = changed and 'applied' or 'duplicate'
  local counts = seen[code]
  if not counts then counts = {applied = 0, duplicate = 0}; seen[code] = counts end
  counts[outcome] = counts[outcome] + 1
end
for code, counts in pairs(seen) do
  for outcome, count in pairs(counts) do
    incr(HEALTH, 'events|' .. TOPIC[code] .. '|' .. TYPE[code] .. '|' .. outcome, count)
  end
end

for id, entry in pairs(leads) do
  if entry.changed then
    local st = entry.st
    if entry.before[CORE_MS] and not entry.created then
      move(entry)
    else
      contribute(entry.before, entry.bdeals, -1)
      contribute(st, entry.deals, 1)
    end
    if entry.deals ~= entry.bdeals then -- new or changed deals go with the core
      local fields = {entry.field, encode_core(st)}
      for deal, d in pairs(entry.deals) do
        if d[5] then
          fields[#fields + 1] = deal_field(d[4], id)
          fields[#fields + 1] = cmsgpack.pack({deal, d[1], d[2], d[3]})
        end
      end
      redis.call('HSET', entry.key, unpack(fields))
    else
      redis.call('HSET', entry.key, entry.field, encode_core(st))
    end
  end
end

-- The counter fields of a tuple: `all|all`, then one per stored segment.
for _, t in ipairs(all_tuples) do
  local fields = {'all|all'}
  for j = 1, nseg do fields[j + 1] = name_of(t.ids[j]) end
  for key, slots in pairs(t.keys) do
    for i = 1, #fields do add(key, fields[i], slots) end
  end
  for i = 1, #fields do incr(SEGMENTS, fields[i], t.seg) end
end

-- Continued in apply_writes.lua: the pending deltas written back, then the sweep.
