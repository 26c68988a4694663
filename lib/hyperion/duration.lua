-- Human durations to seconds: "90s", "10m", "1h30m", "1d", "2w", "500ms"; numbers pass through.
local M = {}

local UNIT = { ms = 0.001, s = 1, m = 60, h = 3600, d = 86400, w = 604800 }

-- Seconds in v. name (optional) labels the option in the error message. Negative, NaN, inf and
-- unknown units raise; 0 is allowed (callers decide what zero means, often "never").
function M.parse(v, name)
	local label = name and (name .. ": ") or ""
	if type(v) == "number" then
		if v ~= v or v < 0 or v == math.huge then
			error(string.format("%sbad duration %s (want a non-negative number or e.g. \"10m\")", label,
				tostring(v)), 2)
		end
		return v
	end
	if type(v) ~= "string" then
		error(string.format("%sbad duration of type %s (want a number or e.g. \"10m\")", label, type(v)), 2)
	end
	local s = v:gsub("^%s+", ""):gsub("%s+$", "")
	if s:match("^%d+%.?%d*$") then return tonumber(s) end
	local total, pos, n = 0, 1, 0
	while pos <= #s do
		local num, unit, nxt = s:match("^(%d+%.?%d*)(%a+)()", pos)
		if not num or not UNIT[unit] then
			error(string.format("%sbad duration '%s' (units: ms s m h d w, e.g. \"1h30m\")", label, v), 2)
		end
		total = total + tonumber(num) * UNIT[unit]
		pos, n = nxt, n + 1
	end
	if n == 0 then
		error(string.format("%sbad duration '%s' (units: ms s m h d w, e.g. \"1h30m\")", label, v), 2)
	end
	return total
end

-- Short text for logs and ban reasons: 5400 -> "1h30m", 90 -> "1m30s".
function M.format(sec)
	sec = math.floor(sec + 0.5)
	if sec == 0 then return "0s" end
	local out = {}
	for _, u in ipairs({ { "w", 604800 }, { "d", 86400 }, { "h", 3600 }, { "m", 60 }, { "s", 1 } }) do
		local q = math.floor(sec / u[2])
		if q > 0 then
			out[#out + 1] = q .. u[1]
			sec = sec - q * u[2]
		end
	end
	return table.concat(out)
end

return M
