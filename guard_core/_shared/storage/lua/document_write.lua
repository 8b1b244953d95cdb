-- Stores a JSON document unless the stored one is newer, so that instances writing back
-- after an outage agree whatever order they write in: the latest configuration wins.
-- KEYS[1]  the document: a JSON object with an "updated_at" field (Unix seconds)
-- ARGV[1]  the new document
-- ARGV[2]  its updated_at
-- Returns 1 when stored, 0 when the stored document is newer (superseded).
local raw = redis.call("GET", KEYS[1])
if raw then
    local ok, decoded = pcall(cjson.decode, raw)
    if ok and type(decoded) == "table" and tonumber(decoded["updated_at"]) then
        if tonumber(decoded["updated_at"]) > tonumber(ARGV[2]) then
            return 0
        end
    end
end
redis.call("SET", KEYS[1], ARGV[1])
return 1
