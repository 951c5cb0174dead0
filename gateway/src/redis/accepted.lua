--[[
  accepted: records an order the buffer holds (status for GET /v1/orders/:id), in one call.

  Input:
    KEYS[1]  order hash
    ARGV[1]  TTL seconds
    ARGV[2]  acceptedAt (epoch ms)
    ARGV[3]  sku
    ARGV[4]  partition
    ARGV[5]  offset
  The status becomes "accepted" only if the order has none yet: a drainer that delivered (or
  dead-lettered) it before this call keeps its status.
  Output: 1
]]
redis.call('HSETNX', KEYS[1], 'status', 'accepted')
redis.call('HSET', KEYS[1], 'acceptedAt', ARGV[2], 'sku', ARGV[3], 'partition', ARGV[4], 'offset', ARGV[5])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
