--[[
  load-sku: sets a SKU's stock and per-user limit for a sale (admin). Loading resets what
  remains to the new stock; per-user counters expire on their own TTL.

  Input:
    KEYS[1]  sku hash
    KEYS[2]  SKU index set
    ARGV[1]  stock (units for sale)
    ARGV[2]  perUserLimit (0 = none)
    ARGV[3]  sku name
    ARGV[4]  now (epoch ms)
  Output: {stock, remaining, perUserLimit}
]]
redis.call('HSET', KEYS[1], 'stock', ARGV[1], 'remaining', ARGV[1], 'perUserLimit', ARGV[2], 'updatedAt', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[3])
return {tonumber(ARGV[1]), tonumber(ARGV[1]), tonumber(ARGV[2])}
