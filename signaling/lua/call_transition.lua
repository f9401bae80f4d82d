-- Moves a 1:1 call from one state to another, atomically (keyspace.call, keyspace.user_call).
-- KEYS[1] the call hash; KEYS[2], KEYS[3] the caller's and callee's user_call keys.
-- ARGV[1] expected state; ARGV[2] new state; ARGV[3] the call id; ARGV[4] seconds an ended call is kept.
-- Returns 1 when it moved, 0 when the call is absent or in another state. Ending a call frees both
-- users' user_call keys when they still name this call.
if redis.call('HGET', KEYS[1], 'state') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
if ARGV[2] == 'ended' then
  for i = 2, 3 do
    if redis.call('GET', KEYS[i]) == ARGV[3] then
      redis.call('DEL', KEYS[i])
    end
  end
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
end
return 1
