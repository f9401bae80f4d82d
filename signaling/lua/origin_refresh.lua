-- A show's origin record refreshed by the node that holds it (signaling/origin_record.py).
-- KEYS[1]: the record (keyspace.show_origin). ARGV[1]: the record to write; ARGV[2]: this node's id;
-- ARGV[3]: its time to live (s). The record is written only while no other node has claimed it since
-- (the broadcaster created the show there): that node's record is returned instead, untouched.
local current = redis.call('GET', KEYS[1])
if current then
  local ok, record = pcall(cjson.decode, current)
  if ok and type(record) == 'table' and record.node ~= ARGV[2] then
    return current
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[3]))
return false
