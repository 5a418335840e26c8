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
-- KEYS[1]: the shard's health hash `<base>g`; every key touched shares its hash tag.
-- ARGV[1..16]: base, lead retention (days), lead buckets per shard, key parts
--   lead/cohort/day/segments/names/calendar/lag, leads topic, deals topic, histogram
--   bounds (csv, milliseconds), attribute dimension keys (csv), longest stored lag
--   (days), today (UTC epoch day, the worker's clock).
-- ARGV[17]: the events as one msgpack array, each a code then its fields (bucket: the
--   lead's bucket, from aggregates/keys.py; ms, stage and cents are integers):
--   c bucket lead ms event_id week month source campaign attr...   (lead.created)
--   q bucket lead ms stage(1|2)                                     (lead.qualified)
--   x bucket lead ms                                                (lead.disqualified)
--   d ms                                                            (deal.created)
--   w bucket lead ms deal cents                                     (deal.won)
--   l bucket lead ms deal                                           (deal.lost)
-- Returns {applied, duplicate}.

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
-- be mistaken for another id); ties are broken on the id as sent, rebuilt when needed.
local HEX = '[0-9a-f]'
local UUID = '^' .. HEX:rep(8) .. '%-' .. HEX:rep(4) .. '%-' .. HEX:rep(4) .. '%-' .. HEX:rep(4) .. '%-' .. HEX:rep(12) .. '$'

local function stored_id(eid)
  if not string.find(eid, UUID) then return eid end
  local hex = string.gsub(eid, '%-', '')
  local words = {}
  for w = 1, 4 do words[w] = tonumber(string.sub(hex, 8 * w - 7, 8 * w), 16) end
  return {struct.pack('>I4I4I4I4', unpack(words))}
end

local function sent_id(stored)
  if type(stored) == 'string' then return stored end
  local hex = string.format('%08x%08x%08x%08x', struct.unpack('>I4I4I4I4', stored[1]))
  return string.sub(hex, 1, 8) .. '-' .. string.sub(hex, 9, 12) .. '-' .. string.sub(hex, 13, 16) .. '-'
    .. string.sub(hex, 17, 20) .. '-' .. string.sub(hex, 21)
end

local function deal_field(i, id) return 'd' .. i .. '|' .. id end

local function changed_on(core) return string.byte(core, 1) * 256 + string.byte(core, 2) end

-- `core`: the unpacked msgpack of the core (or nil); `deals`: its unpacked deals.
-- Deals are {ms, won, cents, index, dirty}, keyed by deal id.
local function decode(core, deals)
  local st = {q = 0, dq = 0, conv = false, nd = 0, deals = {}, c = false}
  if not core then return st end
  st.q, st.dq, st.conv, st.nd = core[1], core[2], core[3], core[4]
  for i, d in ipairs(deals) do st.deals[d[1]] = {d[2], d[3], d[4], i, false} end
  if core[5] then
    local ids = {}
    for j = 1, nseg do ids[j] = core[6 + j] end
    st.c = {ms = core[5], eid = core[6], ids = ids}
  end
  return st
end

local CHANGED_TODAY = string.char(floor(today / 256), today % 256)

local function encode_core(st)
  local a = {st.q, st.dq, st.conv, st.nd}
  local c = st.c
  if c then
    a[5], a[6] = c.ms, c.eid
    for j = 1, nseg do a[6 + j] = c.ids[j] end
  end
  return CHANGED_TODAY .. cmsgpack.pack(a)
end

-- A state events may change without touching `before`: events replace `c` and deal
-- entries whole and never modify them in place, so copying the deal table suffices.
local function copy(st)
  local deals = {}
  for id, d in pairs(st.deals) do deals[id] = d end
  return {q = st.q, dq = st.dq, conv = st.conv, nd = st.nd, deals = deals, c = st.c}
end

-- Pending counter deltas of this call: vectors[key][field][slot], ints[key][field].
local vectors, ints = {}, {}

-- Add slots (a sparse {slot = value}) to the pending vector of key/field.
local function add(key, field, slots)
  local fields = vectors[key]
  if not fields then fields = {}; vectors[key] = fields end
  local vec = fields[field]
  if not vec then vec = {}; fields[field] = vec end
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
-- tuple's counter fields once, at the end: tuples[ids] = {ids, seg = leads, keys = {key = slots}}.
-- A lead's move is then its old contribution taken off and its new one added, cancelling
-- in the tuple's sums, rather than a difference fanned out to every field of the lead.
local tuples = {}

local function bump(keys, key, slot, v)
  local vec = keys[key]
  if not vec then vec = {}; keys[key] = vec end
  vec[slot] = (vec[slot] or 0) + v
end

-- Add `sign` times a lead's contribution (the same for each of its segments) to its tuple.
-- Added straight into the tuple's sums: no table per contribution.
local function contribute(st, sign)
  local c = st.c
  if not c then
    incr(HEALTH, 'orphans', sign * st.nd)
    return
  end
  local tid = c.tid -- a cache on `c`, which events replace whole and never modify
  if not tid then tid = table.concat(c.ids, ','); c.tid = tid end
  local t = tuples[tid]
  if not t then t = {ids = c.ids, seg = 0, keys = {}}; tuples[tid] = t end
  t.seg = t.seg + sign
  local keys = t.keys
  local day = floor(c.ms / DAY_MS)
  local cohorts = cohort_keys[day]
  if not cohorts then
    local pair = labels_of(day)
    cohorts = {COHORT .. pair[1], COHORT .. pair[2]}
    cohort_keys[day] = cohorts
  end
  local cust = st.conv and 1 or 0
  local mql = (st.q >= 1 or cust == 1)
  local disq = (st.dq == 1 and cust == 0)
  local key = day_key(day)
  bump(keys, key, D_LEADS, sign)
  if cust == 1 then bump(keys, key, D_CCUST, sign) end
  for k = 1, 2 do
    key = cohorts[k]
    bump(keys, key, 1, sign)
    if mql then bump(keys, key, 2, sign) end
    if st.q >= 2 or cust == 1 then bump(keys, key, 3, sign) end
    if cust == 1 then bump(keys, key, 4, sign) end
    if mql and not disq then bump(keys, key, 5, sign) end
    if disq then bump(keys, key, 6, sign) end
  end
  if st.conv then
    local ttc = math.max(0, st.conv - c.ms) -- milliseconds: exact, and seconds on /metrics
    key = day_key(floor(st.conv / DAY_MS))
    bump(keys, key, D_PCUST, sign)
    bump(keys, key, D_TTC_SUM, sign * ttc)
    bump(keys, key, D_BUCKET0 + bucket_of(ttc) - 1, sign)
    -- The conversion lag in whole days rounded up (converted within k x 24 h), slot k + 1
    -- of the creation day's lag vector: the matured series and the alerts read it.
    local lag = math.ceil(ttc / DAY_MS)
    if lag <= max_lag then
      bump(keys, day_key(day, lag_keys, LAG), lag + 1, sign)
    end
  end
  for _, d in pairs(st.deals) do
    key = day_key(floor(d[1] / DAY_MS))
    if d[2] == 1 then
      bump(keys, key, D_WON, sign)
      bump(keys, key, D_CENTS, sign * d[3])
    else
      bump(keys, key, D_LOST, sign)
    end
  end
end

local leads = {}
local function lead(bucket, id)
  local entry = leads[id]
  if not entry then
    local key = LEADS .. bucket
    local raw, core, deals = redis.call('HGET', key, 'c' .. id), nil, {}
    if raw then
      core = cmsgpack.unpack(string.sub(raw, 3))
      if core[4] > 0 then
        local fields = {}
        for i = 1, core[4] do fields[i] = deal_field(i, id) end
        for i, packed in ipairs(redis.call('HMGET', key, unpack(fields))) do deals[i] = cmsgpack.unpack(packed) end
      end
    end
    local before = decode(core, deals)
    entry = {key = key, before = before, st = copy(before), changed = false}
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
      local eid, c = E[i + 4], st.c
      if not c or ms < c.ms or (ms == c.ms and less(eid, sent_id(c.eid))) then
        local ids, day = {}, floor(ms / DAY_MS)
        for j = 1, nseg do ids[j] = intern(dims[j + 1] .. '|' .. E[i + 6 + j]) end
        st.c, changed = {ms = ms, eid = stored_id(eid), ids = ids}, true
        if not labels[day] then
          labels[day] = {E[i + 5], E[i + 6]}
          new_days[#new_days + 1] = day
        end
      end
      i = i + 7 + nseg
    elseif code == 'q' then
      local q = E[i + 4]
      if q > st.q then st.q, changed = q, true end
      i = i + 5
    elseif code == 'x' then
      if st.dq == 0 then st.dq, changed = 1, true end
      i = i + 4
    else -- 'w' or 'l'
      local deal, won = E[i + 4], (code == 'w') and 1 or 0
      local cents = (won == 1) and E[i + 5] or 0
      if won == 1 and (not st.conv or ms < st.conv) then st.conv, changed = ms, true end
      local d = st.deals[deal]
      if not d or ms > d[1] or (ms == d[1] and (won > d[2] or (won == d[2] and cents > d[3]))) then
        local index = d and d[4]
        if not index then st.nd = st.nd + 1; index = st.nd end
        st.deals[deal], changed = {ms, won, cents, index, true}, true
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
    contribute(entry.before, -1)
    contribute(st, 1)
    local fields = {'c' .. id, encode_core(st)}
    for deal, d in pairs(st.deals) do
      if d[5] then
        fields[#fields + 1] = deal_field(d[4], id)
        fields[#fields + 1] = cmsgpack.pack({deal, d[1], d[2], d[3]})
      end
    end
    redis.call('HSET', entry.key, unpack(fields))
  end
end

-- The counter fields of a tuple: `all|all`, then one per stored segment.
for _, t in pairs(tuples) do
  local fields = {'all|all'}
  for j = 1, nseg do fields[j + 1] = name_of(t.ids[j]) end
  for key, slots in pairs(t.keys) do
    for i = 1, #fields do add(key, fields[i], slots) end
  end
  for i = 1, #fields do incr(SEGMENTS, fields[i], t.seg) end
end

-- Stored vector plus delta, as stored: comma-separated, zero as '', trailing zeros
-- dropped; '' when everything cancelled out. Only the slots the delta moves are parsed
-- and formatted; the stored text between them is copied in runs (parsing and
-- formatting every slot was the largest cost of the whole script).
local function merged(stored, delta)
  local slots, k = {}, 0
  for slot, v in pairs(delta) do
    if v ~= 0 then k = k + 1; slots[k] = slot end
  end
  if k > 1 then table.sort(slots) end
  stored = stored or ''
  local n = #stored
  -- Slot `cur` starts at byte `pos`; pos is false once past the last stored slot, and
  -- then `have` slots are written. stored[copied..] is not yet copied out.
  local pos, cur, have, copied = n > 0 and 1, 1, 0, 1
  local out, o = {}, 0
  for j = 1, k do
    local t = slots[j]
    while pos and cur < t do
      local comma = find(stored, ',', pos, true)
      pos, cur = comma and comma + 1, cur + 1
    end
    local v = delta[t]
    if pos then
      local comma = find(stored, ',', pos, true)
      local stop = comma and comma - 1 or n
      v = v + (tonumber(sub(stored, pos, stop)) or 0)
      out[o + 1], o = sub(stored, copied, pos - 1), o + 1
      copied = stop + 1
    else
      if have == 0 and n > 0 then have = cur - 1 end
      out[o + 1], o = sub(stored, copied) .. string.rep(',', (have == 0) and t - 1 or t - have), o + 1
      copied, have = n + 1, t
    end
    out[o + 1], o = (v ~= 0) and format('%d', v) or '', o + 1
  end
  out[o + 1] = sub(stored, copied)
  local text = table.concat(out)
  local top = #text
  while top > 0 and byte(text, top) == 44 do top = top - 1 end -- 44: ','
  return sub(text, 1, top)
end

-- One HMGET and at most one HSET and one HDEL per hash, in chunks that stay well
-- inside Lua's limit on unpacked arguments.
local CHUNK = 500
for key, fields in pairs(vectors) do
  local names = {}
  for field, delta in pairs(fields) do
    for _, v in pairs(delta) do
      if v ~= 0 then names[#names + 1] = field; break end
    end
  end
  for first = 1, #names, CHUNK do
    local stop = math.min(first + CHUNK - 1, #names)
    local stored = redis.call('HMGET', key, unpack(names, first, stop))
    local sets, dels = {}, {}
    for j = first, stop do
      local value = merged(stored[j - first + 1], fields[names[j]])
      if value == '' then
        dels[#dels + 1] = names[j]
      else
        sets[#sets + 1] = names[j]; sets[#sets + 1] = value
      end
    end
    if #sets > 0 then redis.call('HSET', key, unpack(sets)) end
    if #dels > 0 then redis.call('HDEL', key, unpack(dels)) end
  end
end

-- The calendar learns each new day once: one HMGET and one HSET per call rather than an
-- HSETNX per day, with HSETNX's meaning (a stored day keeps its labels).
for first = 1, #new_days, CHUNK do
  local stop = math.min(first + CHUNK - 1, #new_days)
  local stored, sets = redis.call('HMGET', CALENDAR, unpack(new_days, first, stop)), {}
  for j = first, stop do
    if not stored[j - first + 1] then
      local day = new_days[j]
      sets[#sets + 1] = day; sets[#sets + 1] = labels[day][1] .. '|' .. labels[day][2]
    end
  end
  if #sets > 0 then redis.call('HSET', CALENDAR, unpack(sets)) end
end

for key, fields in pairs(ints) do
  for field, delta in pairs(fields) do
    if delta ~= 0 then redis.call('HINCRBY', key, field, delta) end
  end
end

for topic, ms in pairs(last) do
  local field = 'last|' .. topic
  local stored = tonumber(redis.call('HGET', HEALTH, field))
  if not stored or ms > stored then redis.call('HSET', HEALTH, field, string.format('%d', ms)) end
end

-- Retention: every call sweeps the next buckets of its shard (the cursor is `sweep` in the
-- health hash), buckets/1024 of them so a pass takes 1,024 calls whatever the shards,
-- deleting the leads whose last change is more than `retention` days old. Last, so a lead
-- this batch changed is never swept.
local per_call = math.ceil(buckets / 1024)
local cursor = redis.call('HINCRBY', HEALTH, 'sweep', per_call)
for b = cursor - per_call + 1, cursor do
  local swept = LEADS .. (b % buckets)
  local flat, gone = redis.call('HGETALL', swept), {}
  for j = 1, #flat, 2 do
    local field, core = flat[j], flat[j + 1]
    if string.sub(field, 1, 1) == 'c' and today - changed_on(core) > retention then
      local id = string.sub(field, 2)
      gone[#gone + 1] = field
      for k = 1, cmsgpack.unpack(string.sub(core, 3))[4] do gone[#gone + 1] = deal_field(k, id) end
    end
  end
  for first = 1, #gone, CHUNK do
    redis.call('HDEL', swept, unpack(gone, first, math.min(first + CHUNK - 1, #gone)))
  end
end

return {applied, duplicate}
