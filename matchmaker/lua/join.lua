-- queue.join: ends the user's live pair, then writes the ticket, queues the user and tells the feed.
-- KEYS: ticket, queue, feed
-- ARGV: (end_pair's 1-5), 6 ticket JSON, 7 ticket TTL ms, 8 enqueued us, 9 feed maxlen
end_pair(ARGV[1])
redis.call('SET', KEYS[1], ARGV[6], 'PX', ARGV[7])
redis.call('ZADD', KEYS[2], ARGV[8], ARGV[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[9], '*', 'op', 'join', 'user', ARGV[1], 'at', ARGV[8])
return 1
