--[[
  intake: the hot path's one call per event-loop turn. First the status records of orders the
  buffer now holds, then the atomic admission of new orders (idempotency claim, SKU stock,
  per-user limit), one after the other in the given order: exactly what one call per order would
  do, in one round trip.

  Input:
    ARGV[1]  idempotency TTL seconds
    ARGV[2]  "1" if SKUs must be loaded first (SPILLWAY_REQUIRE_KNOWN_SKU)
    ARGV[3]  user counter TTL seconds
    ARGV[4]  order status TTL seconds
    ARGV[5]  r: how many orders to admit (then #KEYS - 3r status records follow)
    per order to admit, i = 0 .. r-1:
      KEYS[3i+1]  sku hash         (fields: stock, remaining, perUserLimit)
      KEYS[3i+2]  user counter     (units of this SKU bought by this user)
      KEYS[3i+3]  idempotency key  ("" = none)
      ARGV[3i+6]  quantity
      ARGV[3i+7]  request hash     (for Idempotency-Key reuse detection)
      ARGV[3i+8]  orderId
    per status record, j = 0 .. a-1:
      KEYS[3r+j+1]     order hash
      ARGV[3r+4j+6]    acceptedAt (epoch ms)
      ARGV[3r+4j+7]    sku
      ARGV[3r+4j+8]    partition
      ARGV[3r+4j+9]    offset
  A status becomes "accepted" only if the order has none yet: a drainer that delivered (or
  dead-lettered) it before this call keeps its status.
  Output: a flat array, two entries per order admitted:
    "OK", remainingAfter | -1       reserved; -1 = unlimited SKU
    "DUPLICATE", storedValue        the idempotency key exists: "P|hash|orderId" or "D|hash|status|body"
    "SOLD_OUT", remaining
    "PURCHASE_LIMIT_REACHED", bought
    "UNKNOWN_SKU", 0
  Nothing is changed for an order unless its answer is OK. Stock never goes below zero.
]]
local idemTtl = tonumber(ARGV[1])
local requireKnown = ARGV[2] == '1'
local userTtl = tonumber(ARGV[3])
local statusTtl = tonumber(ARGV[4])
local r = tonumber(ARGV[5])

for j = 0, #KEYS - 3 * r - 1 do
  local key, a = KEYS[3 * r + j + 1], 3 * r + 4 * j + 5
  redis.call('HSETNX', key, 'status', 'accepted')
  redis.call('HSET', key, 'acceptedAt', ARGV[a + 1], 'sku', ARGV[a + 2], 'partition', ARGV[a + 3], 'offset', ARGV[a + 4])
  redis.call('EXPIRE', key, statusTtl)
end

local function reserve(sku, user, idem, qty, hash, orderId)
  if idem ~= '' then
    local existing = redis.call('GET', idem)
    if existing then return 'DUPLICATE', existing end
  end
  local remaining = redis.call('HGET', sku, 'remaining')
  local limit = redis.call('HGET', sku, 'perUserLimit')
  if not remaining and requireKnown then return 'UNKNOWN_SKU', 0 end
  if remaining and tonumber(remaining) < qty then return 'SOLD_OUT', remaining end
  local bought = 0
  if limit and tonumber(limit) > 0 then
    bought = tonumber(redis.call('GET', user) or '0')
    if bought + qty > tonumber(limit) then return 'PURCHASE_LIMIT_REACHED', bought end
  end
  local after = -1
  if remaining then after = redis.call('HINCRBY', sku, 'remaining', -qty) end
  if limit and tonumber(limit) > 0 then
    redis.call('INCRBY', user, qty)
    redis.call('EXPIRE', user, userTtl)
  end
  if idem ~= '' then
    redis.call('SET', idem, 'P|' .. hash .. '|' .. orderId, 'EX', idemTtl)
  end
  return 'OK', after
end

local out = {}
for i = 0, r - 1 do
  local k, a = 3 * i, 3 * i + 5
  local kind, value = reserve(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3])
  out[2 * i + 1] = kind
  out[2 * i + 2] = value
end
return out
