--[[
  release: gives back what reserve took, when the order could not be appended to the buffer.

  Input:
    KEYS[1]  sku hash
    KEYS[2]  user counter
    KEYS[3]  idempotency key ("" = none)
    ARGV[1]  quantity
    ARGV[2]  orderId (the idempotency claim is dropped only if it is still this order's)
  Output: 1
]]
local qty = tonumber(ARGV[1])
if redis.call('HEXISTS', KEYS[1], 'remaining') == 1 then
  redis.call('HINCRBY', KEYS[1], 'remaining', qty)
end
local limit = redis.call('HGET', KEYS[1], 'perUserLimit')
if limit and tonumber(limit) > 0 then
  local left = redis.call('DECRBY', KEYS[2], qty)
  if left <= 0 then redis.call('DEL', KEYS[2]) end
end
if KEYS[3] ~= '' then
  local v = redis.call('GET', KEYS[3])
  if v and string.sub(v, 1, 2) == 'P|' and string.sub(v, -string.len(ARGV[2])) == ARGV[2] then
    redis.call('DEL', KEYS[3])
  end
end
return 1
