-- Adds or removes one custom pattern, settling conflicts by when each change was made, so
-- that instances writing back after an outage agree whatever order they write in.
-- KEYS[1]  the custom patterns: a sorted JSON array of strings (absent: empty)
-- KEYS[2]  hash: pattern -> when it was last added or removed (Unix seconds)
-- ARGV[1]  "add" or "remove"
-- ARGV[2]  the pattern
-- ARGV[3]  when the change was made (Unix seconds)
-- Returns 0 when a later change of the pattern is already there (superseded), 1 when applied
-- and the list already held (add) or lacked (remove) it, 2 when the list changed.
-- A list that is not a JSON array of strings is left alone and answered with an error.
local op = ARGV[1]
local item = ARGV[2]
if op ~= "add" and op ~= "remove" then
    return redis.error_reply("pattern_write: unknown operation " .. tostring(op))
end
local last = tonumber(redis.call("HGET", KEYS[2], item))
if last and last > tonumber(ARGV[3]) then
    return 0
end

local items = {}
local raw = redis.call("GET", KEYS[1])
if raw then
    local ok, decoded = pcall(cjson.decode, raw)
    if not ok or type(decoded) ~= "table" then
        return redis.error_reply("pattern_write: " .. KEYS[1] .. " is not a JSON array")
    end
    local count = #decoded
    for index, value in pairs(decoded) do
        if type(index) ~= "number" or index < 1 or index > count or type(value) ~= "string" then
            return redis.error_reply("pattern_write: " .. KEYS[1] .. " is not an array of strings")
        end
    end
    items = decoded
end
redis.call("HSET", KEYS[2], item, ARGV[3])

local position = nil
for index, value in ipairs(items) do
    if value == item then
        position = index
        break
    end
end
if op == "add" then
    if position then
        return 1
    end
    table.insert(items, item)
    table.sort(items)
else
    if not position then
        return 1
    end
    table.remove(items, position)
end
-- cjson writes an empty table as an object: spell the empty array out
if #items == 0 then
    redis.call("SET", KEYS[1], "[]")
else
    redis.call("SET", KEYS[1], cjson.encode(items))
end
return 2
