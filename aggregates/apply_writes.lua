-- The last part of apply.lua (aggregates/store.py loads the parts as one script): the
-- call's pending deltas written back, vectors merged into their stored text, then the
-- retention sweep. Every name used here is a local of apply.lua.

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
-- Each field of `names` rewritten as merge(stored, fields[name]); an empty result deletes it.
local function write_back(key, fields, names, merge)
  for first = 1, #names, CHUNK do
    local stop = math.min(first + CHUNK - 1, #names)
    local stored = redis.call('HMGET', key, unpack(names, first, stop))
    local sets, dels = {}, {}
    for j = first, stop do
      local value = merge(stored[j - first + 1], fields[names[j]])
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

for key, fields in pairs(vectors) do
  local names = {}
  for field, delta in pairs(fields) do
    for _, v in pairs(delta) do
      if v ~= 0 then names[#names + 1] = field; break end
    end
  end
  write_back(key, fields, names, merged)
end

-- An awaiting list as stored (times of day in ms, comma-separated, ascending; a time
-- repeats once per lead created at that instant) plus its pending entries.
local function merged_list(stored, pending)
  local counts, times = {}, {}
  for entry in string.gmatch(stored or '', '[^,]+') do counts[entry] = (counts[entry] or 0) + 1 end
  for entry, count in pairs(pending) do counts[entry] = (counts[entry] or 0) + count end
  for entry, count in pairs(counts) do
    for _ = 1, count do times[#times + 1] = tonumber(entry) end
  end
  table.sort(times)
  for j = 1, #times do times[j] = format('%d', times[j]) end
  return table.concat(times, ',')
end

for key, fields in pairs(lists) do
  local names = {}
  for field in pairs(fields) do names[#names + 1] = field end
  write_back(key, fields, names, merged_list)
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

return {applied, duplicate, advance(KEYS[2], ARGV, 20)}
