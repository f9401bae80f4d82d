-- Ends a user's live pair (if any) and tells the peer; shared by join, leave and next.
-- Prepended to join.lua/leave.lua/next.lua by matchmaker/store.py (one script each, one EVALSHA).
-- The session key and the peer's pair key depend on what the script reads, so they cannot be named
-- in KEYS beforehand: they are built from the prefixes, and carry the {mm} hash tag of every matchmaker
-- key, so on Redis Cluster they sit in the slot of the script's KEYS (Redis checks this).
-- Needs: ARGV[1] user, ARGV[2] pair key prefix, ARGV[3] session key prefix, ARGV[4] channel prefix,
--        ARGV[5] reason (rejoin | leave | next)
local function end_pair(user)
  local pair_key = ARGV[2] .. user
  local sid = redis.call('GET', pair_key)
  if not sid then
    return false
  end
  redis.call('DEL', pair_key)
  local people = redis.call('HMGET', ARGV[3] .. sid, 'a', 'b')
  local peer = people[1] == user and people[2] or people[1]
  if peer then
    local peer_key = ARGV[2] .. peer
    if redis.call('GET', peer_key) == sid then
      redis.call('DEL', peer_key)
      redis.call('PUBLISH', ARGV[4] .. peer,
        cjson.encode({type = 'match.ended', session_id = sid, reason = ARGV[5]}))
    end
  end
  return sid
end
