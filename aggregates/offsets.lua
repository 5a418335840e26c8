-- Compare-and-set the applied Kafka offset of each partition in one atomic step.
-- KEYS[1]: the offsets hash.  ARGV: triples (field "topic|partition", expected, new),
-- where -1 stands for "no offset stored".  An offset moves only from the value the
-- worker last saw, so a Redis that lost writes (or a partition another worker moved
-- on) is noticed instead of overwritten.  Returns the refused fields with the value
-- Redis really holds: {field1, stored1, field2, stored2, ...}.
local refused = {}
for i = 1, #ARGV, 3 do
  local field = ARGV[i]
  local stored = tonumber(redis.call('HGET', KEYS[1], field) or '-1')
  if stored == tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], field, ARGV[i + 2])
  else
    refused[#refused + 1] = field
    refused[#refused + 1] = tostring(stored)
  end
end
return refused
