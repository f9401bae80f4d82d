-- Drops queue members whose ticket is gone (expired or never written). Atomic, so a user who
-- re-joins in between is never dropped: join writes the ticket and the queue entry together.
-- KEYS: queue, then one ticket key per user;  ARGV: the users, in the same order
local removed = 0
for i = 1, #ARGV do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return removed
