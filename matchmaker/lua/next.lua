-- queue.next: ends the live pair and requeues the user with the ticket of their last pair.
-- KEYS: ticket, queue, last, feed
-- ARGV: (end_pair's 1-5), 6 ticket TTL ms, 7 enqueued us, 8 feed maxlen
-- Returns 'requeued', 'queued' (already waiting: nothing to do) or 'none' (nothing to requeue).
end_pair(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 'queued'
end
local sid = redis.call('GET', KEYS[3])
if not sid then
  return 'none'
end
local session = redis.call('HMGET', ARGV[3] .. sid, 'a', 'ta', 'tb')
local ticket = session[1] == ARGV[1] and session[2] or session[3]
if not ticket then
  return 'none'
end
redis.call('SET', KEYS[1], ticket, 'PX', ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[7], ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[8], '*', 'op', 'join', 'user', ARGV[1], 'at', ARGV[7])
return 'requeued'
