#!lua flags=no-writes
-- HGETALL of every key in KEYS, each as one string `field;value;field;value...` ('' when
-- the hash is empty or missing). One call per shard instead of one command per hash,
-- and one string per hash instead of two per field: a scrape reads ~116 hashes per
-- shard, and per-command and per-element overhead, not Redis, dominated small scrapes.
-- Field names and values never contain ';' (segments are normalised to [a-z0-9_.-],
-- Kafka topic names to [a-zA-Z0-9._-], values are digits and commas).
-- Read-only (the no-writes flag lets it run on replicas too). Sent by EVAL, whose keys
-- redis-py's Cluster pipeline routes without asking the server; all KEYS share the
-- shard's hash tag, so it is one slot.
local out = {}
for i, key in ipairs(KEYS) do out[i] = table.concat(redis.call('HGETALL', key), ';') end
return out
