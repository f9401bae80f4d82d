-- Pins a room to the chosen node unless another request pinned it first (switchboard/placement.py).
-- The pin moves only away from the node it names in ARGV[1] (one that left the registry, or drains):
-- when a show's node dies, every client of the show asks for a token at once, and they must all be
-- sent to one node (the first chosen), not each to the node its own selection picked.
-- KEYS[1]: the room's pin (keyspace.room_node). ARGV[1]: the pinned node seen as gone ("" if none),
-- ARGV[2]: the chosen node, ARGV[3]: the pin's TTL in seconds. Returns the node the room is pinned to.
local pinned = redis.call('GET', KEYS[1])
if pinned == false or pinned == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return ARGV[2]
end
return pinned
