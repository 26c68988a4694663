-- IPv4/IPv6 addresses and prefixes in pure Lua: parse, normalise, contains, prefix-of, overlap.
--
-- A parsed network is { family = 4|6, addr = <4 or 16 raw bytes, host bits zeroed>, len = prefix length }.
-- Text forms are canonical: dotted quad for IPv4, RFC 5952 for IPv6 (lowercase, longest zero run "::").
-- A bare address is a /32 or /128. Bad input raises an error naming the input.
local bit = require("bit")

local M = {}

M.SET_MAX = 4096          -- default cap on networks in one cidr.set (allowlists are small; lookups scan)
M.SET_CACHE_MAX = 4096    -- answers a cidr.set remembers; the cache is dropped whole when full

local function fail(what, s, level)
	error(string.format("cidr: %s: '%s'", what, tostring(s)), (level or 2) + 1)
end

local function parse_v4(s)
	local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
	if not a then return nil end
	local out = {}
	for i, p in ipairs({ a, b, c, d }) do
		-- A leading zero is rejected: inet_aton would read it as octal, a classic allowlist bypass.
		if #p > 3 or (#p > 1 and p:sub(1, 1) == "0") then return nil end
		local n = tonumber(p)
		if n > 255 then return nil end
		out[i] = n
	end
	return string.char(out[1], out[2], out[3], out[4])
end

local function parse_v6(s)
	if s:find("[^%x:%.]") then return nil end
	local head, tail = s, nil
	local dc = s:find("::", 1, true)
	if dc then
		head, tail = s:sub(1, dc - 1), s:sub(dc + 2)
		if tail:find("::", 1, true) then return nil end
	end
	local function groups(part, allow_v4)
		local g = {}
		if part == "" then return g end
		local fields = {}
		for f in (part .. ":"):gmatch("([^:]*):") do fields[#fields + 1] = f end
		for i, f in ipairs(fields) do
			if i == #fields and allow_v4 and f:find(".", 1, true) then
				local v4 = parse_v4(f)
				if not v4 then return nil end
				g[#g + 1] = v4:byte(1) * 256 + v4:byte(2)
				g[#g + 1] = v4:byte(3) * 256 + v4:byte(4)
			elseif f:match("^%x%x?%x?%x?$") then
				g[#g + 1] = tonumber(f, 16)
			else
				return nil
			end
		end
		return g
	end
	local hg = groups(head, not dc)
	local tg = dc and groups(tail, true) or {}
	if not hg or not tg then return nil end
	local n = #hg + #tg
	if (dc and n > 7) or (not dc and n ~= 8) then return nil end
	local all = {}
	for _, v in ipairs(hg) do all[#all + 1] = v end
	for _ = 1, 8 - n do all[#all + 1] = 0 end
	for _, v in ipairs(tg) do all[#all + 1] = v end
	local bytes = {}
	for i = 1, 8 do
		bytes[2 * i - 1] = string.char(bit.rshift(all[i], 8))
		bytes[2 * i] = string.char(bit.band(all[i], 0xff))
	end
	return table.concat(bytes)
end

-- Zero every bit past len. Whole-byte lengths (every bare address, /24, /64) avoid the byte loop:
-- this runs for each event's source, so it is on the hot path.
local function mask(addr, len)
	local nbytes = #addr
	if len >= nbytes * 8 then return addr end
	if len % 8 == 0 then return addr:sub(1, len / 8) .. string.rep("\0", nbytes - len / 8) end
	local out = {}
	for i = 1, #addr do
		local keep = len - (i - 1) * 8
		local b = addr:byte(i)
		if keep <= 0 then
			b = 0
		elseif keep < 8 then
			b = bit.band(b, bit.band(bit.lshift(0xff, 8 - keep), 0xff))
		end
		out[i] = string.char(b)
	end
	return table.concat(out)
end

-- Parse "addr" or "addr/len"; host bits are cleared. Raises on junk.
function M.parse(s)
	if type(s) == "table" and s.family then return s end
	if type(s) ~= "string" then fail("not an address", s) end
	local a, l = s:match("^%s*([^/%s]+)/(%d+)%s*$")
	if not a then a = s:match("^%s*(%S+)%s*$") end
	if not a then fail("not an address", s) end
	local family, addr
	if a:find(":", 1, true) then
		family, addr = 6, parse_v6(a)
	else
		family, addr = 4, parse_v4(a)
	end
	if not addr then fail("not an IPv" .. family .. " address", s) end
	local max = family == 4 and 32 or 128
	local len = l and tonumber(l) or max
	if len > max or (l and #l > 1 and l:sub(1, 1) == "0") then fail("bad prefix length", s) end
	return { family = family, addr = mask(addr, len), len = len }
end

local function format_addr(family, addr)
	if family == 4 then
		return string.format("%d.%d.%d.%d", addr:byte(1, 4))
	end
	local g = {}
	for i = 1, 8 do g[i] = addr:byte(2 * i - 1) * 256 + addr:byte(2 * i) end
	-- RFC 5952: compress the longest run of two or more zero groups, the first one on a tie.
	local best_i, best_n, i = nil, 1, 1
	while i <= 8 do
		if g[i] == 0 then
			local j = i
			while j <= 8 and g[j] == 0 do j = j + 1 end
			if j - i > best_n then best_i, best_n = i, j - i end
			i = j
		else
			i = i + 1
		end
	end
	local parts = {}
	for k = 1, 8 do parts[k] = string.format("%x", g[k]) end
	if not best_i then return table.concat(parts, ":") end
	local left = table.concat(parts, ":", 1, best_i - 1)
	local right = table.concat(parts, ":", best_i + best_n, 8)
	return left .. "::" .. right
end

-- Canonical text of a parsed network; the "/len" is left out for a single address unless full is set.
function M.tostring(net, full)
	local s = format_addr(net.family, net.addr)
	local max = net.family == 4 and 32 or 128
	if full or net.len ~= max then s = s .. "/" .. net.len end
	return s
end

-- "10.1.2.3/8" -> "10.0.0.0/8", "2001:DB8:0::1" -> "2001:db8::1". Raises on junk.
function M.normalise(s)
	local okp, net = pcall(M.parse, s)
	if not okp then error(net, 2) end
	return M.tostring(net)
end

-- Family (4 or 6) of an address or network, or nil if it does not parse.
function M.family(s)
	local okp, net = pcall(M.parse, s)
	return okp and net.family or nil
end

function M.valid(s)
	return (pcall(M.parse, s))
end

-- Does network net contain ip (an address or a network)? Different families never contain each other.
function M.contains(net, ip)
	local okn, n = pcall(M.parse, net)
	if not okn then error(n, 2) end
	local oki, a = pcall(M.parse, ip)
	if not oki then error(a, 2) end
	if n.family ~= a.family or a.len < n.len then return false end
	return mask(a.addr, n.len) == n.addr
end

-- Do two networks share any address?
function M.overlaps(x, y)
	local a, b = M.parse(x), M.parse(y)
	if a.family ~= b.family then return false end
	local len = math.min(a.len, b.len)
	return mask(a.addr, len) == mask(b.addr, len)
end

-- The enclosing prefix of ip with length len as canonical text ("192.0.2.77", 24 -> "192.0.2.0/24").
function M.prefix_of(ip, len)
	local oki, a = pcall(M.parse, ip)
	if not oki then error(a, 2) end
	local max = a.family == 4 and 32 or 128
	if type(len) ~= "number" or len < 0 or len > max or len % 1 ~= 0 then
		error(string.format("cidr.prefix_of: bad length %s for IPv%d", tostring(len), a.family), 2)
	end
	len = math.min(len, a.len)
	return M.tostring({ family = a.family, addr = mask(a.addr, len), len = len }, true)
end

-- A fixed list of networks to test addresses against (allowlists). Entries are validated up front.
function M.set(list, max)
	max = max or M.SET_MAX
	if type(list) ~= "table" then error("cidr.set: expected a list of networks", 2) end
	if #list > max then error(string.format("cidr.set: %d networks exceed the cap of %d", #list, max), 2) end
	local nets = {}
	for i, s in ipairs(list) do
		local okp, n = pcall(M.parse, s)
		if not okp then error(string.format("cidr.set: entry %d: %s", i, n), 2) end
		nets[i] = n
	end
	local set = { nets = nets }
	-- Every event asks about its source, and parsing dominates the cost, so answers are cached per
	-- address string; dropping the whole cache when full keeps it bounded without LRU bookkeeping.
	local cache, ncache = {}, 0
	local function lookup(ip)
		local oki, a = pcall(M.parse, ip)
		if not oki then return false end
		for _, n in ipairs(nets) do
			if n.family == a.family and a.len >= n.len and mask(a.addr, n.len) == n.addr then return true end
		end
		return false
	end
	function set.contains(_, ip)
		local hit = cache[ip]
		if hit ~= nil then return hit end
		hit = lookup(ip)
		if type(ip) == "string" then
			if ncache >= M.SET_CACHE_MAX then cache, ncache = {}, 0 end
			cache[ip], ncache = hit, ncache + 1
		end
		return hit
	end
	-- Does any listed network share an address with x (a prefix about to be banned)?
	function set.overlaps(_, x)
		for _, n in ipairs(nets) do
			if M.overlaps(n, x) then return true end
		end
		return false
	end
	return set
end

return M
