-- Sliding-window counter on a sorted set, pruned, counted and recorded in one step.
-- KEYS[1]  the window's sorted set
-- ARGV[1]  limit: hits admitted per window
-- ARGV[2]  window length in milliseconds
-- ARGV[3]  unique member naming this hit
-- ARGV[4]  "1": record every hit (tracking); "0": record only admitted hits (limiting)
-- Returns {allowed (1|0), hits in the window, milliseconds until the oldest hit leaves it}.
-- Time comes from the server, so every instance shares one clock.
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local record_always = ARGV[4] == "1"

local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

redis.call("ZREMRANGEBYSCORE", key, "-inf", now - window)
local count = redis.call("ZCARD", key)
local allowed = count < limit
if allowed or record_always then
    redis.call("ZADD", key, now, ARGV[3])
    count = count + 1
    if count > limit + 1 then
        -- a tracker only needs to know the threshold was passed: keep the newest limit + 1
        redis.call("ZREMRANGEBYRANK", key, 0, count - limit - 2)
        count = limit + 1
    end
    redis.call("PEXPIRE", key, window)
end

local reset_after = 0
local oldest = redis.call("ZRANGE", key, 0, 0, "WITHSCORES")
if oldest[2] then
    reset_after = tonumber(oldest[2]) + window - now
end
return {allowed and 1 or 0, count, reset_after}
