-- Adds or removes one string in a key holding a sorted JSON array of strings, in one step,
-- so that concurrent changes from several instances never overwrite each other.
-- KEYS[1]  the key holding the JSON array (absent: an empty array)
-- ARGV[1]  "add" or "remove"
-- ARGV[2]  the string
-- Returns 1 when the array changed, 0 when it already held (add) or lacked (remove) it.
-- A value that is not a JSON array of strings is left alone and answered with an error.
local key = KEYS[1]
local op = ARGV[1]
local item = ARGV[2]
if op ~= "add" and op ~= "remove" then
    return redis.error_reply("json_set_update: unknown operation " .. tostring(op))
end

local items = {}
local raw = redis.call("GET", key)
if raw then
    local ok, decoded = pcall(cjson.decode, raw)
    if not ok or type(decoded) ~= "table" then
        return redis.error_reply("json_set_update: " .. key .. " is not a JSON array")
    end
    local count = #decoded
    for index, value in pairs(decoded) do
        if type(index) ~= "number" or index < 1 or index > count or type(value) ~= "string" then
            return redis.error_reply("json_set_update: " .. key .. " is not an array of strings")
        end
    end
    items = decoded
end

local position = nil
for index, value in ipairs(items) do
    if value == item then
        position = index
        break
    end
end

if op == "add" then
    if position then
        return 0
    end
    table.insert(items, item)
    table.sort(items)
else
    if not position then
        return 0
    end
    table.remove(items, position)
end

-- cjson writes an empty table as an object: spell the empty array out
if #items == 0 then
    redis.call("SET", key, "[]")
else
    redis.call("SET", key, cjson.encode(items))
end
return 1
