-- Drops queue members whose ticket is gone (expired or never written). Atomic, so a user who
-- re-joins in between is never dropped: join writes the ticket and the queue entry together.
-- KEYS: queue, feed, then one ticket key per user;  ARGV: feed maxlen, then the users, in order
local removed = {}
for i = 2, #ARGV do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 and redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    removed[#removed + 1] = ARGV[i]
  end
end
if #removed > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'op', 'gone', 'users', table.concat(removed, ' '))
end
return #removed
