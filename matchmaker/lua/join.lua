-- queue.join: ends the user's live pair, then writes the ticket and queues the user.
-- KEYS: ticket, queue
-- ARGV: (end_pair's 1-5), 6 ticket JSON, 7 ticket TTL ms, 8 enqueued us
end_pair(ARGV[1])
redis.call('SET', KEYS[1], ARGV[6], 'PX', ARGV[7])
redis.call('ZADD', KEYS[2], ARGV[8], ARGV[1])
return 1
