-- queue.leave and disconnect: drops the ticket and ends the live pair.
-- KEYS: ticket, queue
-- ARGV: (end_pair's 1-5)
local removed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local sid = end_pair(ARGV[1])
if sid then
  return {removed, sid}
end
return {removed, false}
