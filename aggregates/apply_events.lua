-- The fourth part of apply.lua (aggregates/store.py loads the parts as one script): each
-- lead's state loaded, the events joined into it, and the counters moved by the
-- difference. Every name used here is a local of the parts before.

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
local E = cmsgpack.unpack(ARGV[19])
local i, n = 1, #E
while i <= n do
  local code, changed = E[i], false
  local entry = lead(E[i + 1], E[i + 2])
  local st, ms = entry.st, E[i + 3]
  if code == 'd' then
    -- Only its first one changes the lead (it has a deal: not stalled at sql), yet each counts
    -- as applied, as before v1.2: a re-send cannot be told from another deal's creation.
    if st[DEALT] == 0 then st[DEALT], entry.changed = 1, true end
    changed = true
    i = i + 4
  else
    if code == 'c' then
      local eid, created = E[i + 4], st[CORE_MS]
      if not created or ms < created or (ms == created and less(sent_id(eid), sent_id(st[CORE_EID]))) then
        local day = floor(ms / DAY_MS)
        st[CORE_MS], st[CORE_EID], st[DEADLINE] = ms, eid, E[i + 7]
        for j = 1, nseg do st[CORE_EID + j] = intern(dims[j + 1] .. '|' .. E[i + 7 + j]) end
        entry.created, changed = true, true
        if not labels[day] then
          labels[day] = {E[i + 5], E[i + 6]}
          new_days[#new_days + 1] = day
        end
      end
      i = i + 8 + nseg
    elseif code == 'q' then
      if not st[MQL] or ms < st[MQL] then st[MQL], changed = ms, true end
      if E[i + 4] == 2 and (not st[SQL] or ms < st[SQL]) then st[SQL], changed = ms, true end
      i = i + 5
    elseif code == 'x' or code == 't' then -- earliest disqualification, first touch
      local slot = (code == 'x') and DQ or TOUCH
      if not st[slot] or ms < st[slot] then st[slot], changed = ms, true end
      i = i + 4
    else -- 'w' or 'l'
      local deal, won = E[i + 4], (code == 'w') and 1 or 0
      local cents = (won == 1) and E[i + 5] or 0
      if won == 1 and (not st[CONV] or ms < st[CONV]) then st[CONV], changed = ms, true end
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
  for key, entries in pairs(t.lists) do
    local by_field = lists[key]
    if not by_field then by_field = {}; lists[key] = by_field end
    for i = 1, #fields do
      local pending = by_field[fields[i]]
      if not pending then pending = {}; by_field[fields[i]] = pending end
      for entry, count in pairs(entries) do pending[entry] = (pending[entry] or 0) + count end
    end
  end
  for i = 1, #fields do incr(SEGMENTS, fields[i], t.seg) end
end

-- Continued in apply_writes.lua: the pending deltas written back, then the sweep.
