-- Claims disjoint pairs atomically: for each pair, both tickets must still exist, neither user may
-- be in a live pair, neither may block the other, and they must not have been paired within the
-- rematch window. Each pair is re-checked on its own: a stale pair is skipped (with its reason)
-- and the rest of the batch goes on. A claimed pair consumes both tickets, records the session,
-- and publishes match.found to both users. One feed entry names every user the batch removed.
-- Every key is passed in KEYS (Redis Cluster: they all carry the {mm} hash tag, one slot); arguments
-- and messages are built by matchmaker/claims.py.
--
-- KEYS: queue, events, feed; then per pair (11): ticket a, ticket b, pair a, pair b, last a, last b,
--       recent a, recent b, blocks a, blocks b, session
-- ARGV: 1 now_us, 2 window_us, 3 session_ttl_ms, 4 events maxlen, 5 feed maxlen, 6 channel prefix;
--       then per pair (5): a, b, session_id, message for a, message for b
-- Returns one status per pair: ok | gone_a | gone_b | busy_a | busy_b | blocked | rematch
local queue, events, feed = KEYS[1], KEYS[2], KEYS[3]
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local session_ttl, maxlen = ARGV[3], ARGV[4]
local p_channel = ARGV[6]
local window_ms = math.floor(window / 1000)
local out, removed = {}, {}
local k = 3
for a = 6, #ARGV - 1, 5 do
  local ua, ub, sid = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local ta, tb, pa, pb = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local la, lb, ra, rb = KEYS[k + 5], KEYS[k + 6], KEYS[k + 7], KEYS[k + 8]
  local ba, bb, sk = KEYS[k + 9], KEYS[k + 10], KEYS[k + 11]
  k = k + 11
  local status = 'ok'
  local tickets = redis.call('MGET', ta, tb)
  local ticket_a, ticket_b = tickets[1], tickets[2]
  if not ticket_a then
    status = 'gone_a'
    if redis.call('ZREM', queue, ua) == 1 then removed[#removed + 1] = ua end
  elseif not ticket_b then
    status = 'gone_b'
    if redis.call('ZREM', queue, ub) == 1 then removed[#removed + 1] = ub end
  elseif redis.call('EXISTS', pa, pb) > 0 then
    status = redis.call('EXISTS', pa) == 1 and 'busy_a' or 'busy_b'
  else
    -- Few users block anyone: one EXISTS for both sets, SISMEMBER only when there is a set.
    if redis.call('EXISTS', ba, bb) > 0 and
        (redis.call('SISMEMBER', ba, ub) == 1 or redis.call('SISMEMBER', bb, ua) == 1) then
      status = 'blocked'
    else
      local seen = redis.call('ZSCORE', ra, ub)
      if seen and tonumber(seen) > now - window then
        status = 'rematch'
      end
    end
  end
  if status == 'ok' then
    redis.call('DEL', ta, tb)
    redis.call('ZREM', queue, ua, ub)
    removed[#removed + 1] = ua
    removed[#removed + 1] = ub
    redis.call('SET', pa, sid, 'PX', session_ttl)
    redis.call('SET', pb, sid, 'PX', session_ttl)
    redis.call('SET', la, sid, 'PX', session_ttl)
    redis.call('SET', lb, sid, 'PX', session_ttl)
    redis.call('HSET', sk, 'a', ua, 'b', ub, 'at_us', ARGV[1], 'ta', ticket_a, 'tb', ticket_b)
    redis.call('PEXPIRE', sk, session_ttl)
    redis.call('ZADD', ra, now, ub)
    redis.call('ZADD', rb, now, ua)
    redis.call('PEXPIRE', ra, window_ms)
    redis.call('PEXPIRE', rb, window_ms)
    -- Entries older than the window no longer count: drop them once a set has grown (ZCARD is
    -- O(1); trimming at every pair cost more than the rest of the pair's bookkeeping).
    for _, recent in ipairs({ra, rb}) do
      if redis.call('ZCARD', recent) > 32 then
        redis.call('ZREMRANGEBYSCORE', recent, '-inf', now - window)
      end
    end
    redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'type', 'match.paired',
      'session_id', sid, 'a', ua, 'b', ub, 'at_us', ARGV[1])
    redis.call('PUBLISH', p_channel .. ua, ARGV[a + 4])
    redis.call('PUBLISH', p_channel .. ub, ARGV[a + 5])
  end
  out[#out + 1] = status
end
if #removed > 0 then
  redis.call('XADD', feed, 'MAXLEN', '~', ARGV[5], '*', 'op', 'gone', 'users', table.concat(removed, ' '))
end
return out
