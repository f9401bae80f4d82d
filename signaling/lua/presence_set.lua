-- Writes the presence of many users in one call (keyspace.presence).
-- KEYS the users' presence keys, then (when ARGV[3] is given) as many keyspace.banned keys and as
-- many keyspace.token_epoch keys, in the same user order; ARGV[1] the node id; ARGV[2] the TTL in
-- seconds; ARGV[3] the number of users whose ban and token are checked (absent: a presence refresh,
-- no check); then that many token issue times (iat, unix seconds), in the same order; then as many
-- flags, '1' to write the user's presence, '0' to check only (a hidden moderator's session is no
-- presence: it is checked like any other and shows nobody it is there).
-- One script call instead of one SET per user: 10,000 users cost the node 20 calls, not 10,000
-- (each SET built and parsed by redis-py blocked the event loop ~10 us).
-- Returns a flat list of (1-based position, 'banned' | 'revoked') for refused users; their presence
-- is not written. A token issued before the user's epoch is revoked.
local n = tonumber(ARGV[3] or '0')
local count = n > 0 and n or #KEYS
local refused = {}
for i = 1, count do
  local why = false
  if n > 0 then
    if redis.call('EXISTS', KEYS[n + i]) == 1 then
      why = 'banned'
    else
      local epoch = tonumber(redis.call('GET', KEYS[2 * n + i]) or '')
      if epoch and tonumber(ARGV[3 + i]) < epoch then
        why = 'revoked'
      end
    end
  end
  if why then
    refused[#refused + 1] = i
    refused[#refused + 1] = why
  elseif n == 0 or ARGV[3 + n + i] ~= '0' then
    redis.call('SET', KEYS[i], ARGV[1], 'EX', ARGV[2])
  end
end
return refused
