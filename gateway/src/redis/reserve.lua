--[[
  reserve: the atomic admission of one order (idempotency claim, SKU stock, per-user limit).

  Input:
    KEYS[1]  sku hash         (fields: stock, remaining, perUserLimit)
    KEYS[2]  user counter     (units of this SKU bought by this user)
    KEYS[3]  idempotency key  ("" = none)
    ARGV[1]  quantity
    ARGV[2]  request hash     (for Idempotency-Key reuse detection)
    ARGV[3]  orderId
    ARGV[4]  idempotency TTL seconds
    ARGV[5]  "1" if SKUs must be loaded first (SPILLWAY_REQUIRE_KNOWN_SKU)
    ARGV[6]  user counter TTL seconds
  Output (array):
    {"OK", remainingAfter | -1}     reserved; -1 = unlimited SKU
    {"DUPLICATE", storedValue}      the idempotency key exists: "P|hash|orderId" or "D|hash|status|body"
    {"SOLD_OUT", remaining}
    {"PURCHASE_LIMIT_REACHED", bought}
    {"UNKNOWN_SKU"}
  Nothing is changed unless the answer is OK. Stock never goes below zero.
]]
local qty = tonumber(ARGV[1])
if KEYS[3] ~= '' then
  local existing = redis.call('GET', KEYS[3])
  if existing then return {'DUPLICATE', existing} end
end
local remaining = redis.call('HGET', KEYS[1], 'remaining')
local limit = redis.call('HGET', KEYS[1], 'perUserLimit')
if not remaining and ARGV[5] == '1' then return {'UNKNOWN_SKU'} end
if remaining and tonumber(remaining) < qty then return {'SOLD_OUT', remaining} end
local bought = 0
if limit and tonumber(limit) > 0 then
  bought = tonumber(redis.call('GET', KEYS[2]) or '0')
  if bought + qty > tonumber(limit) then return {'PURCHASE_LIMIT_REACHED', bought} end
end
local after = -1
if remaining then after = redis.call('HINCRBY', KEYS[1], 'remaining', -qty) end
if limit and tonumber(limit) > 0 then
  redis.call('INCRBY', KEYS[2], qty)
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[6]))
end
if KEYS[3] ~= '' then
  redis.call('SET', KEYS[3], 'P|' .. ARGV[2] .. '|' .. ARGV[3], 'EX', tonumber(ARGV[4]))
end
return {'OK', after}
