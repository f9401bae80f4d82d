-- Claims disjoint pairs atomically: for each pair, both tickets must still exist, neither user may
-- be in a live pair, neither may block the other, and they must not have been paired within the
-- rematch window. A claimed pair consumes both tickets, records the session, and publishes
-- match.found to both users. Keys and messages are built by matchmaker/claims.py.
--
-- KEYS: queue, events, then per pair (11): ticket a, ticket b, pair a, pair b, last a, last b,
--       recent a, recent b, blocks a, blocks b, session
-- ARGV: now_us, window_us, session_ttl_ms, events_maxlen, then per pair (7): a, b, session_id,
--       channel a, channel b, message for a, message for b
-- Returns one status per pair: ok | gone_a | gone_b | busy | blocked | rematch
local queue, events = KEYS[1], KEYS[2]
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local session_ttl, maxlen = ARGV[3], ARGV[4]
local out = {}
local npairs = (#KEYS - 2) / 11
for p = 0, npairs - 1 do
  local k, a = 2 + p * 11, 4 + p * 7
  local ta, tb, pa, pb, la, lb, ra, rb, ba, bb, sk =
    KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5], KEYS[k + 6],
    KEYS[k + 7], KEYS[k + 8], KEYS[k + 9], KEYS[k + 10], KEYS[k + 11]
  local ua, ub, sid = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local status = 'ok'
  local ticket_a = redis.call('GET', ta)
  local ticket_b = redis.call('GET', tb)
  if not ticket_a then
    status = 'gone_a'
    redis.call('ZREM', queue, ua)
  elseif not ticket_b then
    status = 'gone_b'
    redis.call('ZREM', queue, ub)
  elseif redis.call('EXISTS', pa) == 1 or redis.call('EXISTS', pb) == 1 then
    status = 'busy'
  elseif redis.call('SISMEMBER', ba, ub) == 1 or redis.call('SISMEMBER', bb, ua) == 1 then
    status = 'blocked'
  else
    local seen = redis.call('ZSCORE', ra, ub)
    if seen and tonumber(seen) > now - window then
      status = 'rematch'
    end
  end
  if status == 'ok' then
    redis.call('DEL', ta, tb)
    redis.call('ZREM', queue, ua, ub)
    redis.call('SET', pa, sid, 'PX', session_ttl)
    redis.call('SET', pb, sid, 'PX', session_ttl)
    redis.call('SET', la, sid, 'PX', session_ttl)
    redis.call('SET', lb, sid, 'PX', session_ttl)
    redis.call('HSET', sk, 'a', ua, 'b', ub, 'at_us', ARGV[1], 'ta', ticket_a, 'tb', ticket_b)
    redis.call('PEXPIRE', sk, session_ttl)
    local window_ms = math.floor(window / 1000)
    redis.call('ZADD', ra, now, ub)
    redis.call('ZADD', rb, now, ua)
    redis.call('ZREMRANGEBYSCORE', ra, '-inf', now - window)
    redis.call('ZREMRANGEBYSCORE', rb, '-inf', now - window)
    redis.call('PEXPIRE', ra, window_ms)
    redis.call('PEXPIRE', rb, window_ms)
    redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'type', 'match.paired',
      'session_id', sid, 'a', ua, 'b', ub, 'at_us', ARGV[1])
    redis.call('PUBLISH', ARGV[a + 4], ARGV[a + 6])
    redis.call('PUBLISH', ARGV[a + 5], ARGV[a + 7])
  end
  out[#out + 1] = status
end
return out
