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
-- ARGV[17..]: events, each a code then its fields (bucket: the lead's bucket, from
--   aggregates/keys.py):
--   c bucket lead ms event_id week month source campaign attr...   (lead.created)
--   q bucket lead ms stage(1|2)                                     (lead.qualified)
--   x bucket lead ms                                                (lead.disqualified)
--   d ms                                                            (deal.created)
--   w bucket lead ms deal cents                                     (deal.won)
--   l bucket lead ms deal                                           (deal.lost)
-- Returns {applied, duplicate}.

local DAY_MS = 86400000
local floor = math.floor
local base, retention, buckets = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local LEADS, COHORT, DAY, SEGMENTS = base .. ARGV[4], base .. ARGV[5], base .. ARGV[6], base .. ARGV[7]
local NAMES, CALENDAR, LAG, HEALTH = base .. ARGV[8], base .. ARGV[9], base .. ARGV[10], KEYS[1]
local TOPIC = {c = ARGV[11], q = ARGV[11], x = ARGV[11], d = ARGV[12], w = ARGV[12], l = ARGV[12]}
local TYPE = {
  c = 'lead.created', q = 'lead.qualified', x = 'lead.disqualified',
  d = 'deal.created', w = 'deal.won', l = 'deal.lost',
}

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

-- Pending counter deltas of this call: vectors[key][field][slot], ints[key][field].
local vectors, ints = {}, {}

-- Add sign * slots (a sparse {slot = value}) to the pending vector of key/field.
local function add(key, field, slots, sign)
  local fields = vectors[key]
  if not fields then fields = {}; vectors[key] = fields end
  local vec = fields[field]
  if not vec then vec = {}; fields[field] = vec end
  for slot, v in pairs(slots) do
    if v ~= 0 then vec[slot] = (vec[slot] or 0) + sign * v end
  end
end

local function incr(key, field, delta)
  local fields = ints[key]
  if not fields then fields = {}; ints[key] = fields end
  fields[field] = (fields[field] or 0) + delta
end

local function bucket_of(ms)
  for i, b in ipairs(bounds) do
    if ms <= b then return i end
  end
  return #bounds + 1
end

-- Add `sign` times the lead's contribution to every counter it feeds.
local function contribute(st, sign)
  local c = st.c
  if not c then
    incr(HEALTH, 'orphans', sign * st.nd)
    return
  end
  local cust = st.conv and 1 or 0
  local mql = (st.q >= 1 or cust == 1) and 1 or 0
  local sql = (st.q >= 2 or cust == 1) and 1 or 0
  local disq = (st.dq == 1 and cust == 0) and 1 or 0
  local qual = (mql == 1 and disq == 0) and 1 or 0
  local day = floor(c.ms / DAY_MS)
  local cohorts = labels_of(day)
  -- Every (key, slots) this lead feeds, the same for each of its segments.
  local feeds = {
    {COHORT .. cohorts[1], {1, mql, sql, cust, qual, disq}},
    {COHORT .. cohorts[2], {1, mql, sql, cust, qual, disq}},
    {DAY .. day, {[D_LEADS] = 1, [D_CCUST] = cust}},
  }
  if st.conv then
    local ttc = math.max(0, st.conv - c.ms) -- milliseconds: exact, and seconds on /metrics
    local slots = {[D_PCUST] = 1, [D_TTC_SUM] = ttc}
    slots[D_BUCKET0 + bucket_of(ttc) - 1] = 1
    feeds[#feeds + 1] = {DAY .. floor(st.conv / DAY_MS), slots}
    -- The conversion lag in whole days rounded up (converted within k x 24 h), slot k + 1
    -- of the creation day's lag vector: the matured series and the alerts read it.
    local lag = math.ceil(ttc / DAY_MS)
    if lag <= max_lag then feeds[#feeds + 1] = {LAG .. day, {[lag + 1] = 1}} end
  end
  for _, d in pairs(st.deals) do
    local slots = (d[2] == 1) and {[D_WON] = 1, [D_CENTS] = d[3]} or {[D_LOST] = 1}
    feeds[#feeds + 1] = {DAY .. floor(d[1] / DAY_MS), slots}
  end
  for i = 1, #dims do
    local field = (i == 1) and 'all|all' or name_of(c.ids[i - 1])
    for _, feed in ipairs(feeds) do add(feed[1], field, feed[2], sign) end
    incr(SEGMENTS, field, sign)
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
    entry = {key = key, before = decode(core, deals), st = decode(core, deals), changed = false}
    leads[id] = entry
  end
  return entry
end

local applied, duplicate, last = 0, 0, {}
local i, n = 17, #ARGV
while i <= n do
  local code, ms, changed = ARGV[i], nil, false
  if code == 'd' then
    ms, changed = tonumber(ARGV[i + 1]), true -- carries no state: cannot be a re-send
    i = i + 2
  else
    local entry = lead(ARGV[i + 1], ARGV[i + 2])
    local st = entry.st
    ms = tonumber(ARGV[i + 3])
    if code == 'c' then
      local eid, c = ARGV[i + 4], st.c
      if not c or ms < c.ms or (ms == c.ms and less(eid, sent_id(c.eid))) then
        local ids, day = {}, floor(ms / DAY_MS)
        for j = 1, nseg do ids[j] = intern(dims[j + 1] .. '|' .. ARGV[i + 6 + j]) end
        st.c, changed = {ms = ms, eid = stored_id(eid), ids = ids}, true
        if not labels[day] then
          labels[day] = {ARGV[i + 5], ARGV[i + 6]}
          redis.call('HSETNX', CALENDAR, day, ARGV[i + 5] .. '|' .. ARGV[i + 6])
        end
      end
      i = i + 7 + nseg
    elseif code == 'q' then
      local q = tonumber(ARGV[i + 4])
      if q > st.q then st.q, changed = q, true end
      i = i + 5
    elseif code == 'x' then
      if st.dq == 0 then st.dq, changed = 1, true end
      i = i + 4
    else -- 'w' or 'l'
      local deal, won = ARGV[i + 4], (code == 'w') and 1 or 0
      local cents = (won == 1) and tonumber(ARGV[i + 5]) or 0
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
  incr(HEALTH, 'events|' .. topic .. '|' .. TYPE[code] .. '|' .. (changed and 'applied' or 'duplicate'), 1)
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

-- Stored vector plus delta, as stored: comma-separated, zero as '', trailing zeros
-- dropped; '' when everything cancelled out.
local function merged(stored, delta)
  local vec, size = {}, 0
  if stored then
    for s in string.gmatch(stored .. ',', '([^,]*),') do size = size + 1; vec[size] = tonumber(s) or 0 end
  end
  for slot in pairs(delta) do
    if slot > size then size = slot end
  end
  local out, top = {}, 0
  for s = 1, size do
    local v = (vec[s] or 0) + (delta[s] or 0)
    if v ~= 0 then out[s], top = string.format('%d', v), s else out[s] = '' end
  end
  return table.concat(out, ',', 1, top)
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

-- Retention: every call sweeps the next bucket of its shard (the cursor is `sweep` in
-- the health hash), deleting the leads whose last change is more than `retention`
-- days old. Last, so a lead this batch changed is never swept.
local swept = LEADS .. (redis.call('HINCRBY', HEALTH, 'sweep', 1) % buckets)
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

return {applied, duplicate}
