-- Heartbeat of one instance in the set of live instances, and who is alive now.
-- KEYS[1]  sorted set: instance id -> last heartbeat (server milliseconds)
-- ARGV[1]  this instance's id
-- ARGV[2]  milliseconds after its last heartbeat an instance no longer counts
-- ARGV[3]  "leave": remove this instance instead (it is closing)
-- Returns {live instances, this instance's place among them (by id, from 0)}.
local key = KEYS[1]
local timeout = tonumber(ARGV[2])

if ARGV[3] == "leave" then
    redis.call("ZREM", key, ARGV[1])
    return {redis.call("ZCARD", key), 0}
end

local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

redis.call("ZADD", key, now, ARGV[1])
redis.call("ZREMRANGEBYSCORE", key, "-inf", now - timeout)
redis.call("PEXPIRE", key, timeout * 2)
local live = redis.call("ZCARD", key)
local ids = redis.call("ZRANGE", key, 0, -1)
local rank = 0
for index, id in ipairs(ids) do
    if id < ARGV[1] then
        rank = rank + 1
    end
end
return {live, rank}
