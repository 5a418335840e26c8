-- Advance the offsets of a shard the batch did not touch (a touched shard's move inside
-- its apply.lua call). KEYS[1]: the shard's offsets hash; ARGV: the quadruples of advance.lua.
return advance(KEYS[1], ARGV, 1)
