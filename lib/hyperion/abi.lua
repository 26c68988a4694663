-- The datapath's structs for LuaJIT's FFI, read from lib/hyperion_abi.h so C, BPF and Lua share one text.
--
-- Finds hyperion_abi.h next to this module's directory (lib/hyperion/../hyperion_abi.h, the same layout
-- `make install` uses), takes the text between /* ABI-BEGIN */ and /* ABI-END */, drops preprocessor
-- lines and _Static_assert, prepends the __u8..__u64 typedefs, and ffi.cdef's it once per state.
local ffi = require("ffi")

local M = {}

local function module_dir()
	local src = debug.getinfo(1, "S").source
	if src:sub(1, 1) ~= "@" then return nil end
	return src:sub(2):match("^(.*)/[^/]*$") or "."
end

-- Candidate locations of the header: explicit override, next to lib/, then the working directory.
local function header_paths()
	local list = {}
	if os.getenv("HYPERION_ABI_H") then list[#list + 1] = os.getenv("HYPERION_ABI_H") end
	local dir = module_dir()
	if dir then list[#list + 1] = dir .. "/../hyperion_abi.h" end
	list[#list + 1] = "lib/hyperion_abi.h"
	return list
end

-- Returns the C declarations ffi.cdef accepts, from the header's text.
function M.extract(text)
	local body = text:match("/%*%s*ABI%-BEGIN%s*%*/(.-)/%*%s*ABI%-END%s*%*/")
	if not body then return nil, "ABI-BEGIN/ABI-END markers not found" end
	local out = {
		"typedef uint8_t __u8; typedef uint16_t __u16; typedef uint32_t __u32; typedef uint64_t __u64;",
	}
	for line in (body .. "\n"):gmatch("([^\n]*)\n") do
		if not line:match("^%s*#") and not line:match("^%s*_Static_assert") then
			out[#out + 1] = line
		end
	end
	return table.concat(out, "\n")
end

local function load_header()
	local tried = {}
	for _, p in ipairs(header_paths()) do
		local f = io.open(p, "r")
		if f then
			local text = f:read("*a")
			f:close()
			return text, p
		end
		tried[#tried + 1] = p
	end
	return nil, "hyperion_abi.h not found (tried " .. table.concat(tried, ", ") .. ")"
end

-- ffi.cdef cannot redefine a struct, so a second require in the same state (or a host that declared
-- the ABI first) must not cdef again: probe one type instead.
local function defined()
	return pcall(ffi.typeof, "struct hyp_event")
end

if not defined() then
	local text, where = load_header()
	if not text then error("hyperion.abi: " .. where, 0) end
	local decls, err = M.extract(text)
	if not decls then error("hyperion.abi: " .. where .. ": " .. err, 0) end
	ffi.cdef(decls)
	M.header = where
end

M.event_ptr = ffi.typeof("const struct hyp_event *")
M.EV_PAYLOAD = 64
assert(ffi.sizeof("struct hyp_event") == 152, "hyperion.abi: struct hyp_event layout mismatch")
assert(ffi.sizeof("struct hyp_flow") == 80, "hyperion.abi: struct hyp_flow layout mismatch")

return M
