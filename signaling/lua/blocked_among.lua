-- Which of many users have a block either way with one user (keyspace.blocks), in one call.
-- KEYS[1] the user's own block set, then the block sets of the others, in ARGV order; ARGV[1] the
-- user, then the others. Returns the 1-based positions (among the others) with a block either way:
-- the user blocks them (SISMEMBER of KEYS[1]) or they block the user (SISMEMBER of their set).
-- One script call instead of one SISMEMBER per member: a show's join on a node with 200 members cost
-- its event loop ~27 ms in redis-py's packing and parsing of 200 commands (py-spy, docs/scaling.md).
-- Every key is blocks:{mm}:<user> (one hash slot) and every one is passed in KEYS, so the script runs
-- as it is on a Redis Cluster too (on the slot's master; tests/signaling/test_show_blocks.py runs both).
local me = ARGV[1]
local out = {}
for i = 2, #KEYS do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 1 or redis.call('SISMEMBER', KEYS[i], me) == 1 then
    out[#out + 1] = i - 1
  end
end
return out
