-- Advance the applied Kafka offsets one shard holds (shared by offsets.lua and apply.lua).
-- `args[first..]`: quadruples (field "topic|partition", expected, new, batch's first
-- offset), where -1 stands for "no offset stored".  The shard's events of the batch are applied before, in the same
-- script or on the same connection, so the shard then holds every record up to `new`
-- that it held up to `expected`.  The offset moves (to the larger of stored and `new`)
-- only if the shard already holds `expected` or more: a shard that lost writes (a
-- restart, or a failover that lost a node's last second) is noticed instead of
-- overwritten, and a shard another worker moved on never moves back. A shard's first
-- advance of a partition also keeps the batch's first offset (`from|` field): the
-- records before it were never applied here (`leadpulse verify` recounts from it).
-- Returns the refused fields with the value the shard really holds:
-- {field1, stored1, field2, stored2, ...}.
local function advance(key, args, first)
  local refused = {}
  for i = first, #args, 4 do
    local field = args[i]
    local stored = tonumber(redis.call('HGET', key, field) or '-1')
    if stored >= tonumber(args[i + 1]) then
      local new = tonumber(args[i + 2])
      if new > stored then redis.call('HSET', key, field, args[i + 2]) end
      if stored < 0 then redis.call('HSETNX', key, 'from|' .. field, args[i + 3]) end
    else
      refused[#refused + 1] = field
      refused[#refused + 1] = tostring(stored)
    end
  end
  return refused
end
