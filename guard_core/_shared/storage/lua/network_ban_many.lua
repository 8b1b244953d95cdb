-- Bans many networks at once in the network-ban index (a bulk import), each as
-- network_ban_write.lua's "ban" does: refused when the index holds a later change of that
-- network (a lift made after the import began, or a later ban). Both keys share a slot (the
-- key part is "index"), so this runs on a Cluster too.
-- KEYS[1]  hash: network -> JSON record (ban or lift); "#version" counts changes
-- KEYS[2]  sorted set: network -> Unix time after which its record is forgotten
-- ARGV[1]  when the bans were made (Unix seconds)
-- ARGV[2]  now (Unix seconds): records that ended are pruned, at most 100 per call
-- ARGV[3i..3i+2]  the i-th network, its JSON record, when its record is forgotten
-- Returns one character per network: "1" applied, "0" superseded.
local at = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local changed = false

local ended = redis.call("ZRANGEBYSCORE", KEYS[2], "-inf", now, "LIMIT", 0, 100)
for _, network in ipairs(ended) do
    redis.call("HDEL", KEYS[1], network)
    redis.call("ZREM", KEYS[2], network)
    changed = true
end

local results = {}
for i = 1, (#ARGV - 2) / 3 do
    local network, record, forget_at = ARGV[3 * i], ARGV[3 * i + 1], ARGV[3 * i + 2]
    local result = "1"
    local raw = redis.call("HGET", KEYS[1], network)
    if raw then
        local ok, current = pcall(cjson.decode, raw)
        if ok and type(current) == "table" then
            local when = tonumber(current["banned_at"]) or tonumber(current["lifted_at"]) or 0
            if when > at then
                result = "0"
            end
        end
    end
    if result == "1" then
        redis.call("HSET", KEYS[1], network, record)
        redis.call("ZADD", KEYS[2], forget_at, network)
        changed = true
    end
    results[i] = result
end
if changed then
    redis.call("HINCRBY", KEYS[1], "#version", 1)
end
return table.concat(results)
