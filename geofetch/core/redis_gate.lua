-- geofetch's request gate on Redis: rate (GCRA on Redis TIME), budget, abort,
-- Retry-After deferral and the AIMD back-off, in one script so that each call is
-- one atomic step for every process on every machine. See geofetch/core/redis_gate.py.
--
-- KEYS[1]  the schedule, shared by every run of one gate name (hash):
--          tat (us: the next free slot), defer (us: no send before), seq (tickets
--          handed out), rate (in force, /s), cut (halve only for tickets above),
--          inrow, total (rate-limit answers in a row, in all), win, inwin, before
--          (the current 1 s window's start, requests in it and in the one before).
-- KEYS[2]  this run (hash): count (requests let through), kind, reason (the abort).
-- ARGV[1]  op: acquire | go | throttled | succeeded | defer | abort | state
-- ARGV[2]  configured rate (requests/s; 0: none)   ARGV[3] max_requests (-1: none)
-- ARGV[4]  max_throttled (-1: none)                ARGV[5] headroom (0 < h <= 1)
-- ARGV[6]  late tolerance (us)                     ARGV[7] keys' lifetime (ms)
-- ARGV[8], ARGV[9]: the op's own arguments.
--
-- Times are whole microseconds of Redis TIME (one clock for every machine), kept as
-- strings written with %.0f: Lua's tostring would round them to 14 digits.

local sched, run = KEYS[1], KEYS[2]
local op = ARGV[1]
local conf = tonumber(ARGV[2])
local max_requests = tonumber(ARGV[3])
local max_throttled = tonumber(ARGV[4])
local headroom = tonumber(ARGV[5])
local late = tonumber(ARGV[6])
local ttl = tonumber(ARGV[7])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local function us(x) return string.format('%.0f', x) end
local function num(key, field, default)
  local v = redis.call('HGET', key, field)
  if v then return tonumber(v) end
  return default
end

local function abort_reply()
  local kind = redis.call('HGET', run, 'kind')
  if kind then
    return {'abort', tonumber(kind), redis.call('HGET', run, 'reason') or ''}
  end
  return nil
end

local function set_abort(kind, reason)
  if not redis.call('HGET', run, 'kind') then
    redis.call('HSET', run, 'kind', kind, 'reason', reason)
  end
end

-- The rate in force: the schedule's (halved by rate-limit answers), never above
-- this run's configured rate; 0 for no limit.
local function current()
  local rate = num(sched, 'rate', 0)
  if conf > 0 and (rate <= 0 or rate > conf) then rate = conf end
  return rate
end

-- Reserve the next free slot, no sooner than now and than the deferral.
local function reserve()
  local start = math.max(now, num(sched, 'defer', 0))
  local rate = current()
  if rate > 0 then
    start = math.max(start, num(sched, 'tat', 0))
    redis.call('HSET', sched, 'tat', us(start + 1000000 / (headroom * rate)))
  end
  return start
end

local function touch()
  redis.call('PEXPIRE', sched, ttl)
  redis.call('PEXPIRE', run, ttl)
end

if op == 'acquire' then
  local stopped = abort_reply()
  if stopped then return stopped end
  local count = num(run, 'count', 0)
  if max_requests >= 0 and count >= max_requests then
    set_abort(2, 'budget exhausted: max_requests=' .. ARGV[3] .. ' spent')
    return abort_reply()
  end
  redis.call('HSET', run, 'count', count + 1)
  local seq = redis.call('HINCRBY', sched, 'seq', 1)
  local win = num(sched, 'win', 0)
  if now - win >= 1000000 then  -- a new 1 s window (the base of an unlimited run's back-off)
    local before = 0
    if now - win < 2000000 then before = num(sched, 'inwin', 0) end
    redis.call('HSET', sched, 'win', us(now), 'inwin', 1, 'before', before)
  else
    redis.call('HINCRBY', sched, 'inwin', 1)
  end
  local start = reserve()
  touch()
  -- recovering: the rate is below the configured one, or answers were rate limits
  local recovering = 0
  if num(sched, 'inrow', 0) > 0 or (conf > 0 and current() < conf) then recovering = 1 end
  return {'slot', seq, us(start), us(start - now), recovering}
end

if op == 'go' then
  -- A worker woke for its slot ARGV[8]: it goes if it is on time and no deferral
  -- came meanwhile; one that woke late gives its slot up and reserves a new one
  -- (sent late, just before the next worker's slot, it would put rate + 1 requests
  -- into some one-second window). A spent budget does not stop it: its request was
  -- counted within the budget.
  local stopped = abort_reply()
  if stopped and stopped[2] ~= 2 then return stopped end
  local slot = tonumber(ARGV[8])
  if now < num(sched, 'defer', 0) or (current() > 0 and now > slot + late) then
    local start = reserve()
    return {'slot', 0, us(start), us(start - now), 0}
  end
  return {'go'}
end

if op == 'throttled' then
  local ticket = tonumber(ARGV[8])
  local inrow = redis.call('HINCRBY', sched, 'inrow', 1)
  redis.call('HINCRBY', sched, 'total', 1)
  local rate = current()
  if ticket > num(sched, 'cut', 0) then
    local base, floor
    if conf > 0 then
      base, floor = rate, conf / 64
    else
      base = rate
      if base <= 0 then
        base = math.max(num(sched, 'before', 0), num(sched, 'inwin', 0), 1)
      end
      floor = 0.1
    end
    rate = math.max(floor, base / 2)
    redis.call('HSET', sched, 'rate', string.format('%.6f', rate),
               'cut', num(sched, 'seq', 0))
  end
  if max_throttled >= 0 and inrow >= max_throttled then
    set_abort(3, inrow .. ' rate-limit answers in a row (--max-throttled ' .. ARGV[4]
      .. '), the last at ' .. string.format('%.3g', rate)
      .. ' requests/s: the provider\'s quota looks spent')
  end
  return {'ok'}
end

if op == 'succeeded' then
  local inrow = num(sched, 'inrow', 0)
  local rate = num(sched, 'rate', 0)
  if inrow == 0 and (rate <= 0 or (conf > 0 and rate >= conf)) then return {'ok'} end
  if conf > 0 then
    rate = math.min(conf, current() + conf / 20)
  elseif rate > 0 then
    rate = rate * 1.05
  end
  redis.call('HSET', sched, 'rate', string.format('%.6f', rate), 'inrow', 0)
  return {'ok'}
end

if op == 'defer' then
  local until_ = now + tonumber(ARGV[8]) * 1000000
  if until_ > num(sched, 'defer', 0) then
    redis.call('HSET', sched, 'defer', us(until_))
  end
  if until_ > num(sched, 'tat', 0) then
    redis.call('HSET', sched, 'tat', us(until_))
  end
  return {'ok'}
end

if op == 'abort' then
  set_abort(tonumber(ARGV[8]), ARGV[9])
  return {'ok'}
end

if op == 'state' then
  local stopped = abort_reply() or {'none', 0, ''}
  return {stopped[2], stopped[3], num(run, 'count', 0), num(sched, 'total', 0),
          string.format('%.6f', current())}
end

return redis.error_reply('geofetch gate: unknown op ' .. tostring(op))
