-- Several handlers per event kind behind one hx.on registration, so reactions combine in one policy.
--
-- Whether hx.on appends or replaces, going through hooks.on lets autoban, portscan, synflood and the
-- operator's own handlers share a kind. Every handler runs even when an earlier one fails; the first
-- error is re-raised afterwards so the runtime still counts and logs it.
local M = {}

local registries = setmetatable({}, { __mode = "k" })  -- hx table -> kind -> handler list

local function dispatch(list, ev)
	local first_err
	for i = 1, #list do
		local okc, err = pcall(list[i], ev)
		if not okc and not first_err then first_err = err end
	end
	if first_err then error(first_err, 0) end
end

-- Adds fn(ev) for events of kind on hx (default require("hyperion")).
function M.on(kind, fn, hx)
	if type(fn) ~= "function" then error("hooks.on: handler for '" .. tostring(kind) .. "' must be a function", 2) end
	hx = hx or require("hyperion")
	local reg = registries[hx]
	if not reg then
		reg = {}
		registries[hx] = reg
	end
	local list = reg[kind]
	if not list then
		list = {}
		local okc, err = pcall(hx.on, kind, function(ev) dispatch(list, ev) end)
		if not okc then error(err, 2) end
		reg[kind] = list
	end
	list[#list + 1] = fn
end

return M
