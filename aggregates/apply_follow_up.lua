-- The third part of apply.lua (aggregates/store.py loads the parts as one script): a
-- lead's contribution to the counters, the follow-up series of CONTRACT v1.2 included.
-- Every name used here is a local of apply.lua.

local function listed(t, key, entry, sign)
  local entries = t.lists[key]
  if not entries then entries = {}; t.lists[key] = entries end
  entries[entry] = (entries[entry] or 0) + sign
end

-- What of a created lead's follow-up is a function of its state alone; what depends on
-- the clock is left to the reader (aggregates/follow_up.py), so it is keyed by time:
-- - speed to lead (creation to first touch, never below 0) in the creation day's histogram;
-- - the SLA outcome, met (touched at or before the deadline) or breached (not touched by
--   then, and neither disqualified nor won before it), in the creation day's vector at
--   the slot of the deadline's day: the UTC day at whose end or before the deadline
--   falls, counted from the creation day, so "deadline passed by the end of day T" is a
--   sum of slots; two slots on, the same outcome again when the lead is a customer, so
--   the conversion of met and breached leads is read over the same leads;
-- - a lead awaiting touch (no touch, not disqualified, not a customer): its creation time
--   of day in the creation day's awaiting list, so overdue and oldest are exact at any time;
-- - a stalled candidate (mql without sql, or sql without any deal, and open) at the day it
--   reached the stage.
local function follow_up(t, st, sign)
  local keys, created = t.keys, st[CORE_MS]
  local day = floor(created / DAY_MS)
  local key = day_key(day)
  local touch, conv, dq = st[TOUCH], st[CONV], st[DQ]
  if touch then
    local speed = math.max(0, touch - created)
    bump(keys, key, D_TOUCH_SUM, sign * speed)
    bump(keys, key, D_TOUCH0 + bucket_of(speed, touch_bounds) - 1, sign)
  end
  local deadline = created + st[DEADLINE]
  local ended = (conv and dq) and math.min(conv, dq) or conv or dq
  local outcome = (touch and touch <= deadline) and 0 or ((ended and ended < deadline) and -1 or 1)
  if outcome >= 0 then
    local slot = D_FOLLOW_UP0 + 4 * (floor((deadline - 1) / DAY_MS) - day) + outcome
    bump(keys, key, slot, sign)
    if conv then bump(keys, key, slot + 2, sign) end
  end
  if conv or dq then return end
  if not touch then listed(t, AWAITING .. day, format('%d', created - day * DAY_MS), sign) end
  if st[SQL] then
    if st[DEALT] == 0 and st[4] == 0 then bump(keys, day_key(floor(st[SQL] / DAY_MS)), D_STALL_SQL, sign) end
  elseif st[MQL] then
    bump(keys, day_key(floor(st[MQL] / DAY_MS)), D_STALL_MQL, sign)
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
  if st[CONV] then conversion(keys, created, st[CONV], sign) end
  for _, d in pairs(deals) do deal(keys, d, sign) end
  follow_up(t, st, sign)
end

-- A lead whose creation stands (no event of this call replaced it): its tuple, day and
-- cohorts stay, so only what moved is added: the same sums as `before` taken off and
-- `st` added, in a few additions rather than two whole contributions.
local function move(entry)
  local before, st = entry.before, entry.st
  local created = st[CORE_MS]
  local t = tuple_of(st)
  local keys, day = t.keys, floor(created / DAY_MS)
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
  if before[CONV] ~= st[CONV] then
    if before[CONV] then conversion(keys, created, before[CONV], -1) end
    if st[CONV] then conversion(keys, created, st[CONV], 1) end
  end
  for slot = MQL, DEALT do -- any of the times, the deal count or the deal flag
    if before[slot] ~= st[slot] then
      follow_up(t, before, -1)
      follow_up(t, st, 1)
      break
    end
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
