#!lua flags=no-writes
-- HGETALL of every key in KEYS, in one atomic call: {reply of KEYS[1], reply of KEYS[2], ...}.
-- `leadpulse verify` reads a shard's offsets, its names dictionary and lead state buckets
-- with it, so the states it compares are exactly those of the records up to the offsets
-- read with them. Lead state is binary msgpack, so unlike read.lua nothing is joined.
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGETALL', key) end
return out
