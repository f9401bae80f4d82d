-- A block made while two users are paired: ends their pair (only if each one's live pair is the
-- same session) and tells both, so neither learns more than from the other leaving.
-- KEYS: pair key of a, pair key of b
-- ARGV: 1 a, 2 b, 3 channel prefix, 4 reason
-- Returns the ended session id, or false when the two were not paired with each other.
local sid = redis.call('GET', KEYS[1])
if not sid or redis.call('GET', KEYS[2]) ~= sid then
  return false
end
redis.call('DEL', KEYS[1], KEYS[2])
local ended = cjson.encode({type = 'match.ended', session_id = sid, reason = ARGV[4]})
redis.call('PUBLISH', ARGV[3] .. ARGV[1], ended)
redis.call('PUBLISH', ARGV[3] .. ARGV[2], ended)
return sid
