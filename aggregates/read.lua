#!lua flags=no-writes
-- HGETALL of the keys in KEYS, sparse: {i, text, i, text, ...} for each KEYS[i] whose hash
-- is not empty, text being `field;value;field;value...`. One call per shard instead of one
-- command per hash, one string per hash instead of two per field, and nothing for the
-- empty ones (most day and lag hashes of a small pipeline): a scrape reads ~785 hashes
-- per shard, and per-command and per-element overhead, not the data, dominated small
-- scrapes. Field names and values never contain ';' (segments are normalised to
-- [a-z0-9_.-], Kafka topic names to [a-zA-Z0-9._-], values are digits and commas).
-- ARGV[1], ARGV[2] (optional) = first, count: KEYS[first + count + k] is read only when
-- KEYS[first + k] is not empty (k = 0 .. count-1). read.py passes the day hashes and
-- then the lag hashes of the same days: a lead adds to its creation day's lag vector
-- only with the lead counted in that day's vector, in the same shard and fields, so the
-- lag hash of a day without leads is empty and is not worth a call.
-- Read-only (the no-writes flag lets it run on replicas too). Sent by EVAL, whose keys
-- redis-py's Cluster pipeline routes without asking the server; all KEYS share the
-- shard's hash tag, so it is one slot.
local first, count = tonumber(ARGV[1]) or 0, tonumber(ARGV[2]) or 0
local out, n, skip = {}, 0, {}
for i, key in ipairs(KEYS) do
  if not skip[i] then
    local flat = redis.call('HGETALL', key)
    if #flat > 0 then
      out[n + 1], out[n + 2], n = i, table.concat(flat, ';'), n + 2
    elseif i >= first and i < first + count then
      skip[i + count] = true
    end
  end
end
return out
