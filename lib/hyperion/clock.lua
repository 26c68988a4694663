-- Picks the monotonic clock (seconds) a module reads: the caller's function, else hx.now from hyperion.
local M = {}

-- Wall time would jump with NTP and make windows and bans misfire, so there is deliberately no
-- os.time() fallback: a missing hx.now is an error that names the module asking.
function M.resolve(clock, who)
	if clock ~= nil then
		if type(clock) ~= "function" then error(who .. ": opts.clock must be a function", 3) end
		return clock
	end
	local okh, hx = pcall(require, "hyperion")
	if okh and type(hx) == "table" and type(hx.now) == "function" then return hx.now end
	error(who .. ": no clock: pass opts.clock or run where hyperion's hx.now exists", 3)
end

return M
