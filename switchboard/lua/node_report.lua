-- Counts one user's report that a node is lost, against the heartbeat the reporter's API read
-- (switchboard/placement.py). KEYS[1]: the report set (keyspace.node_reports). ARGV[1]: the
-- reporting user's id, ARGV[2]: the set's TTL in seconds. Returns the number of distinct reporters.
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return redis.call('SCARD', KEYS[1])
