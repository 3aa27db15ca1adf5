-- geofetch fetch: per-host politeness on the run's Redis (see shared.py), atomic for
-- every worker on every machine. Times are Redis TIME in whole microseconds.
--
-- KEYS[1]  the record: a host's slots (sorted set: token -> lease end), or an
--          origin's pacing (hash: reserved, last).
-- ARGV[1]  op: take | give | reserve | release | note
-- take:    ARGV[2] cap, ARGV[3] token, ARGV[4] lease (us): 1 if a slot was taken, else 0
-- give:    ARGV[3] token
-- reserve, release, note: ARGV[2] the Crawl-delay (us); returns the wait (us)

local key, op = KEYS[1], ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function us(x) return string.format('%.0f', x) end

if op == 'take' then
  redis.call('ZREMRANGEBYSCORE', key, '-inf', us(now))  -- leases of dead holders
  if redis.call('ZCARD', key) >= tonumber(ARGV[2]) then return 0 end
  local lease = tonumber(ARGV[4])
  redis.call('ZADD', key, us(now + lease), ARGV[3])
  redis.call('PEXPIRE', key, math.floor(lease / 1000) + 1000)
  return 1
end

if op == 'give' then
  redis.call('ZREM', key, ARGV[3])
  return 1
end

local delay = tonumber(ARGV[2])
local reserved = tonumber(redis.call('HGET', key, 'reserved') or '0')
local last = tonumber(redis.call('HGET', key, 'last') or '-1')
local after = now
if last >= 0 then after = last + delay end
local result
if op == 'reserve' then      -- a time `delay` after the last reservation and request
  local start = math.max(now, reserved, after)
  reserved = start + delay
  result = start - now
elseif op == 'release' then  -- go no sooner than `delay` after the last request sent
  local go = math.max(now, after)
  reserved = math.max(reserved, go + delay)
  last = go
  result = go - now
else                         -- note: a request went now, outside wait()
  last = math.max(last, now)
  result = 0
end
redis.call('HSET', key, 'reserved', us(reserved), 'last', us(last))
redis.call('PEXPIRE', key, 24 * 3600 * 1000)
return us(result)
