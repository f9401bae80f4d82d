-- Counts one user's report that a node is lost, against the heartbeat the reporter's API read
-- (switchboard/placement.py). KEYS[1]: the report set (keyspace.node_reports), KEYS[2]: the node's
-- suspect marker (keyspace.node_suspect), KEYS[3]: the reporter's placement marker on that node
-- (keyspace.node_placed); one {nodes} slot. ARGV[1]: the reporting user's id, ARGV[2]: the set's TTL
-- in seconds, ARGV[3]: the entry's updated_ms, ARGV[4]: the reporters needed, ARGV[5]: the marker's
-- TTL in seconds. A user the API did not recently place on the node is not counted (returns -1).
-- Returns the number of distinct reporters; once it reaches ARGV[4], the marker holds ARGV[3].
if redis.call('EXISTS', KEYS[3]) == 0 then
  return -1
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
local count = redis.call('SCARD', KEYS[1])
if count >= tonumber(ARGV[4]) then
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[5])
end
return count
