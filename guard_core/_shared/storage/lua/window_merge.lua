-- Write hits counted during an outage into a shared sliding window, each once.
-- KEYS[1]  the window's sorted set (as lua/sliding_window.lua keeps it)
-- ARGV[1]  window length in milliseconds
-- ARGV[2]  hits kept at most (the newest; 0: no bound)
-- ARGV[3], ARGV[4], ...  pairs: a hit's id (its member) and its time in milliseconds
-- A hit already in the set keeps its score (ZADD NX), so writing the same hits again changes
-- nothing. Hits older than the window are skipped. Returns the hits added.
local key = KEYS[1]
local window = tonumber(ARGV[1])
local keep = tonumber(ARGV[2])

local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local added = 0
for index = 3, #ARGV - 1, 2 do
    local at = tonumber(ARGV[index + 1])
    if at > now - window then
        added = added + redis.call("ZADD", key, "NX", at, ARGV[index])
    end
end
redis.call("ZREMRANGEBYSCORE", key, "-inf", now - window)
local count = redis.call("ZCARD", key)
if keep > 0 and count > keep then
    redis.call("ZREMRANGEBYRANK", key, 0, count - keep - 1)
end
if count > 0 then
    redis.call("PEXPIRE", key, window)
end
return added
