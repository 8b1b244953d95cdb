-- Bans or lifts the ban of one address, settling conflicts by when each change was made, so
-- that instances writing back after an outage agree whatever order they write in.
-- KEYS[1]  the ban: JSON {"expires_at", "banned_at", "reason"} (an older layout: the expiry)
-- KEYS[2]  the lift record: the time of the latest lift
-- ARGV[1]  "ban" or "lift"
-- ARGV[2]  when the change was made (Unix seconds)
-- ARGV[3]  ban: the JSON record to store; lift: unused
-- ARGV[4]  milliseconds the ban (ban) or the lift record (lift) is kept
-- Returns 0 when a later change is already there (superseded), 1 when applied, 2 when a lift
-- removed a ban.
local at = tonumber(ARGV[2])
local ttl = tonumber(ARGV[4])

local function banned_at(raw)
    if not raw then
        return nil
    end
    local ok, decoded = pcall(cjson.decode, raw)
    if ok and type(decoded) == "table" and tonumber(decoded["banned_at"]) then
        return tonumber(decoded["banned_at"])
    end
    return 0 -- an older layout or a foreign value: older than any change
end

local current = banned_at(redis.call("GET", KEYS[1]))
if current and current > at then
    return 0
end
local lifted = tonumber(redis.call("GET", KEYS[2]))
if ARGV[1] == "ban" then
    if lifted and lifted > at then
        return 0
    end
    redis.call("SET", KEYS[1], ARGV[3], "PX", ttl)
    return 1
elseif ARGV[1] == "lift" then
    local removed = redis.call("DEL", KEYS[1])
    if not lifted or lifted < at then
        redis.call("SET", KEYS[2], ARGV[2], "PX", ttl)
    end
    return 1 + removed
end
return redis.error_reply("ban_write: unknown operation " .. tostring(ARGV[1]))
