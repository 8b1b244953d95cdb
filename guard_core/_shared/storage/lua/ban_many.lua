-- Bans many addresses at once (a bulk import), each as ban_write.lua's "ban" does: a ban is
-- refused when Redis holds a later change of that address (a lift made after the import
-- began, or a ban made later), so the later change wins. The listing index and its version
-- are updated in the same call, so a lift can never come between a ban and its index entry.
-- Only on one server (or Sentinel): the keys of several addresses span a Cluster's slots.
-- KEYS[1]      the listing index ban_index:addresses (address -> end of its ban)
-- KEYS[2]      the index's version ban_index:version (counts changes)
-- KEYS[2i+1]   the ban of the i-th address (JSON {"expires_at", "banned_at", "reason", "by"})
-- KEYS[2i+2]   its lift record (the time of the latest lift)
-- ARGV[1]      when the bans were made (Unix seconds)
-- ARGV[2]      one line per address, in the order of KEYS: the address, the milliseconds its
--              ban is kept, its end (Unix seconds) and its JSON record, separated by tabs
--              (a JSON record holds no raw tab or newline)
-- Returns {results, version}: results has one character per address, "1" applied, "0"
-- superseded; version is the index's version after the call (unchanged when none applied).
local at = tonumber(ARGV[1])

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

local results = {}
local index = {}
local i = 0
for address, ms, ends, record in string.gmatch(ARGV[2], "([^\t\n]+)\t([^\t\n]+)\t([^\t\n]+)\t([^\n]+)") do
    i = i + 1
    local ban_key, lift_key = KEYS[2 * i + 1], KEYS[2 * i + 2]
    local found = redis.call("MGET", ban_key, lift_key)
    local current = banned_at(found[1])
    local lifted = tonumber(found[2])
    if (current and current > at) or (lifted and lifted > at) then
        results[i] = "0"
    else
        redis.call("SET", ban_key, record, "PX", ms)
        index[#index + 1] = ends
        index[#index + 1] = address
        results[i] = "1"
    end
end
if 2 * i + 2 ~= #KEYS then
    return redis.error_reply("ban_many: " .. i .. " lines for " .. (#KEYS - 2) / 2 .. " addresses")
end
local version
if #index > 0 then
    for first = 1, #index, 1000 do -- ZADD in steps: unpack has a bounded stack
        redis.call("ZADD", KEYS[1], unpack(index, first, math.min(first + 999, #index)))
    end
    version = redis.call("INCR", KEYS[2])
else
    version = tonumber(redis.call("GET", KEYS[2])) or 0
end
return {table.concat(results), version}
