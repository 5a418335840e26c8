-- Advance the applied Kafka offsets one shard holds, each in one atomic step.
-- KEYS[1]: the shard's offsets hash.  ARGV: triples (field "topic|partition", expected,
-- new), where -1 stands for "no offset stored".  The shard's events of the batch were
-- applied just before, on the same connection, so the shard then holds every record
-- up to `new` that it held up to `expected`.  The offset moves (to the larger of
-- stored and `new`) only if the shard already holds `expected` or more: a shard that
-- lost writes (a restart, or a failover that lost a node's last second) is noticed
-- instead of overwritten, and a shard another worker moved on never moves back.
-- Returns the refused fields with the value the shard really holds:
-- {field1, stored1, field2, stored2, ...}.
local refused = {}
for i = 1, #ARGV, 3 do
  local field = ARGV[i]
  local stored = tonumber(redis.call('HGET', KEYS[1], field) or '-1')
  if stored >= tonumber(ARGV[i + 1]) then
    local new = tonumber(ARGV[i + 2])
    if new > stored then redis.call('HSET', KEYS[1], field, ARGV[i + 2]) end
  else
    refused[#refused + 1] = field
    refused[#refused + 1] = tostring(stored)
  end
end
return refused
