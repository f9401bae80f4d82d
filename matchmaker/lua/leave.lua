-- queue.leave and disconnect: drops the ticket and ends the live pair.
-- KEYS: ticket, queue, feed
-- ARGV: (end_pair's 1-5), 6 feed maxlen
local removed = redis.call('DEL', KEYS[1])
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'op', 'gone', 'users', ARGV[1])
end
local sid = end_pair(ARGV[1])
if sid then
  return {removed, sid}
end
return {removed, false}
