-- Sliding-window counter on a sorted set, pruned, counted and recorded in one step.
-- KEYS[1]  the window's sorted set
-- ARGV[1]  limit: hits admitted per window
-- ARGV[2]  window length in milliseconds
-- ARGV[3]  unique member naming this hit (a request of cost n records n members:
--          ARGV[3], ARGV[3].."/1", ... ARGV[3].."/"..(n-1))
-- ARGV[4]  "1": record every hit (tracking); "0": record only admitted hits (limiting)
-- ARGV[5]  cost: hits this request counts for (absent: 1)
-- ARGV[6]  a lease (see `window_leases`): the fewest hits to grant; ARGV[5] hits are asked
--          for and as many as still fit are granted, when that is at least ARGV[6]
-- Returns {allowed (1|0), hits in the window, milliseconds until the oldest hit leaves it},
-- and for a lease the hits granted (recorded) as a fourth element.
-- Time comes from the server, so every instance shares one clock.
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local record_always = ARGV[4] == "1"
local cost = tonumber(ARGV[5] or "1")

local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

redis.call("ZREMRANGEBYSCORE", key, "-inf", now - window)
local count = redis.call("ZCARD", key)
local allowed = count + cost <= limit
local lease = ARGV[6]
if lease and not allowed and limit - count >= tonumber(lease) then
    cost = limit - count
    allowed = true
end
if allowed or record_always then
    if cost == 1 then
        redis.call("ZADD", key, now, ARGV[3])
    else
        local members = {now, ARGV[3]}
        for i = 1, cost - 1 do
            members[#members + 1] = now
            members[#members + 1] = ARGV[3] .. "/" .. i
        end
        redis.call("ZADD", key, (unpack or table.unpack)(members))
    end
    count = count + cost
    if count > limit + 1 and record_always then
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
if lease then
    return {allowed and 1 or 0, count, reset_after, allowed and cost or 0}
end
return {allowed and 1 or 0, count, reset_after}
