-- Writes the presence of many users in one call (keyspace.presence).
-- KEYS the users' presence keys, then (when ARGV[3] is given) as many keyspace.banned keys, in the
-- same user order; ARGV[1] the node id; ARGV[2] the TTL in seconds; ARGV[3] the number of users
-- whose ban is checked (absent: a presence refresh, no check).
-- One script call instead of one SET per user: 10,000 users cost the node 20 calls, not 10,000
-- (each SET built and parsed by redis-py blocked the event loop ~10 us).
-- Returns the 1-based positions of banned users; their presence is not written.
local n = tonumber(ARGV[3] or '0')
local refused = {}
for i = 1, #KEYS - n do
  if n > 0 and redis.call('EXISTS', KEYS[n + i]) == 1 then
    refused[#refused + 1] = i
  else
    redis.call('SET', KEYS[i], ARGV[1], 'EX', ARGV[2])
  end
end
return refused
