-- Bans or lifts the ban of one network in the network-ban index, settling conflicts by when
-- each change was made (as ban_write.lua does for addresses).
-- KEYS[1]  hash: network -> JSON record, a ban {"expires_at", "banned_at", "reason"} or a
--          lift {"lifted_at"}; the field "#version" counts changes, so readers re-read the
--          index only when it changed
-- KEYS[2]  sorted set: network -> Unix time after which its record is forgotten
-- ARGV[1]  "ban" or "lift"
-- ARGV[2]  when the change was made (Unix seconds)
-- ARGV[3]  the network
-- ARGV[4]  the JSON record to store
-- ARGV[5]  Unix time after which the record is forgotten
-- ARGV[6]  now (Unix seconds): records that ended are pruned, at most 100 per call
-- Returns 0 when a later change is already there (superseded), 1 when applied, 2 when a lift
-- removed a live ban.
local at = tonumber(ARGV[2])
local now = tonumber(ARGV[6])
local changed = false

local ended = redis.call("ZRANGEBYSCORE", KEYS[2], "-inf", now, "LIMIT", 0, 100)
for _, network in ipairs(ended) do
    redis.call("HDEL", KEYS[1], network)
    redis.call("ZREM", KEYS[2], network)
    changed = true
end

local function decode(raw)
    if not raw then
        return nil
    end
    local ok, decoded = pcall(cjson.decode, raw)
    if ok and type(decoded) == "table" then
        return decoded
    end
    return nil
end

local current = decode(redis.call("HGET", KEYS[1], ARGV[3]))
local result = 1
if current then
    local when = tonumber(current["banned_at"]) or tonumber(current["lifted_at"]) or 0
    if when > at then
        result = 0
    elseif ARGV[1] == "lift" and current["banned_at"] and (tonumber(current["expires_at"]) or 0) > now then
        result = 2
    end
end
if result > 0 then
    if ARGV[1] ~= "ban" and ARGV[1] ~= "lift" then
        return redis.error_reply("network_ban_write: unknown operation " .. tostring(ARGV[1]))
    end
    redis.call("HSET", KEYS[1], ARGV[3], ARGV[4])
    redis.call("ZADD", KEYS[2], ARGV[5], ARGV[3])
    changed = true
end
if changed then
    redis.call("HINCRBY", KEYS[1], "#version", 1)
end
return result
