-- Loads signature lists from a file, one rule a line, into hx.signature; bad lines are logged and skipped.
--
-- Line format (# starts a comment outside quotes, blank lines are ignored):
--   name  pattern  [action=drop|alert|ban] [proto=tcp|udp|icmp|any] [ports=80,8080] [nocase]
-- The pattern is a bare word or "quoted", where \xNN, \", \\, \n, \r and \t are escapes. Defaults:
-- action=drop, proto=any, all ports, case-sensitive (opts.defaults may change them).
local M = {}

M.NAME_MAX = 47       -- HYP_SIG_NAME_MAX - 1 (NUL)
M.PATTERN_MAX = 64    -- HYP_PATTERN_MAX bytes
M.PORTS_MAX = 8       -- HYP_SIG_PORTS_MAX
M.LINE_MAX = 4096     -- longer lines are refused rather than scanned

local ACTIONS = { drop = true, alert = true, ban = true }
local PROTOS = { tcp = true, udp = true, icmp = true, any = true }
local SIMPLE_ESC = { ['"'] = '"', ["\\"] = "\\", n = "\n", r = "\r", t = "\t" }

-- Splits a line into tokens; returns the list or nil, message.
local function tokenize(line)
	local toks, i, n = {}, 1, #line
	while i <= n do
		local c = line:sub(i, i)
		if c:match("%s") then
			i = i + 1
		elseif c == "#" then
			break
		elseif c == '"' then
			local buf, j, closed = {}, i + 1, false
			while j <= n do
				local d = line:sub(j, j)
				if d == '"' then
					closed = true
					break
				elseif d == "\\" then
					local e = line:sub(j + 1, j + 1)
					if e == "x" then
						local hex = line:sub(j + 2, j + 3)
						if not hex:match("^%x%x$") then return nil, "bad \\x escape (want \\xNN)" end
						buf[#buf + 1] = string.char(tonumber(hex, 16))
						j = j + 4
					elseif SIMPLE_ESC[e] then
						buf[#buf + 1] = SIMPLE_ESC[e]
						j = j + 2
					else
						return nil, "unknown escape \\" .. e
					end
				else
					buf[#buf + 1] = d
					j = j + 1
				end
			end
			if not closed then return nil, "unterminated quoted pattern" end
			local nxt = line:sub(j + 1, j + 1)
			if nxt ~= "" and not nxt:match("%s") then return nil, "text right after a closing quote" end
			toks[#toks + 1] = { text = table.concat(buf), quoted = true }
			i = j + 1
		else
			local j = i
			while j <= n and not line:sub(j, j):match("%s") do j = j + 1 end
			local tok = line:sub(i, j - 1)
			if tok:find('"', 1, true) then return nil, "stray quote in '" .. tok .. "'" end
			toks[#toks + 1] = { text = tok }
			i = j
		end
	end
	return toks
end

local function parse_ports(v)
	local ports = {}
	for p in (v .. ","):gmatch("([^,]*),") do
		local n = tonumber(p)
		if not p:match("^%d+$") or n < 1 or n > 65535 then return nil, "bad port '" .. p .. "'" end
		ports[#ports + 1] = n
	end
	if #ports > M.PORTS_MAX then return nil, string.format("more than %d ports", M.PORTS_MAX) end
	return ports
end

-- One rule from one line, or nil (blank/comment), or false, message.
local function parse_line(line, defaults)
	if #line > M.LINE_MAX then return false, string.format("line longer than %d bytes", M.LINE_MAX) end
	local toks, err = tokenize(line)
	if not toks then return false, err end
	if #toks == 0 then return nil end
	if #toks < 2 then return false, "want: name pattern [options]" end
	local name = toks[1].text
	if toks[1].quoted or not name:match("^[%w_.:-]+$") then
		return false, "bad name '" .. name .. "' (letters, digits, _ . : - only)"
	end
	if #name > M.NAME_MAX then return false, string.format("name longer than %d characters", M.NAME_MAX) end
	local pattern = toks[2].text
	if #pattern == 0 then return false, "empty pattern" end
	if #pattern > M.PATTERN_MAX then
		return false, string.format("pattern of %d bytes exceeds %d", #pattern, M.PATTERN_MAX)
	end
	local rule = { name = name, pattern = pattern, action = defaults.action or "drop",
		proto = defaults.proto or "any", ports = defaults.ports, nocase = defaults.nocase or nil }
	local seen = {}
	for k = 3, #toks do
		local tok = toks[k].text
		local key, val = tok:match("^(%w+)=(.*)$")
		key = key or tok
		if toks[k].quoted then return false, "unexpected quoted text '" .. tok .. "'" end
		if seen[key] then return false, "option '" .. key .. "' given twice" end
		seen[key] = true
		if key == "nocase" and not val then
			rule.nocase = true
		elseif key == "action" and val then
			if not ACTIONS[val] then return false, "bad action '" .. val .. "' (drop, alert, ban)" end
			rule.action = val
		elseif key == "proto" and val then
			if not PROTOS[val] then return false, "bad proto '" .. val .. "' (tcp, udp, icmp, any)" end
			rule.proto = val
		elseif key == "ports" and val then
			local ports, perr = parse_ports(val)
			if not ports then return false, perr end
			rule.ports = ports
		else
			return false, "unknown option '" .. tok .. "'"
		end
	end
	return rule
end

-- Parses text; returns the rules (each with .line) and the errors as "source:line: message".
function M.parse(text, source, defaults)
	if type(text) ~= "string" then error("sigfile.parse: text must be a string", 2) end
	source, defaults = source or "?", defaults or {}
	local rules, errors, names, lineno = {}, {}, {}, 0
	for line in (text:gsub("\r\n", "\n") .. (text:sub(-1) == "\n" and "" or "\n")):gmatch("([^\n]*)\n") do
		lineno = lineno + 1
		local rule, err = parse_line(line, defaults)
		if rule == false then
			errors[#errors + 1] = string.format("%s:%d: %s", source, lineno, err)
		elseif rule then
			if names[rule.name] then
				errors[#errors + 1] = string.format("%s:%d: duplicate name '%s' (first on line %d)", source,
					lineno, rule.name, names[rule.name])
			else
				names[rule.name] = lineno
				rule.line = lineno
				rules[#rules + 1] = rule
			end
		end
	end
	return rules, errors
end

-- Where a relative rules file is: beside the script calling load() first (a policy names its own
-- rules file without caring about the daemon's working directory; not through a tail call, which
-- leaves no caller frame), then as given, then in each directory of package.path (the runtime adds
-- the policy's directory there). level is as for error().
function M.resolve(name, level)
	if type(name) ~= "string" or name == "" then error("sigfile.resolve: name must be a string", 2) end
	if name:sub(1, 1) == "/" then return name end
	local cands = {}
	local info = debug and debug.getinfo and debug.getinfo((level or 1) + 1, "S")
	local dir = info and info.source and info.source:match("^@(.*/)[^/]*$")
	if dir then cands[#cands + 1] = dir .. name end
	cands[#cands + 1] = name
	for tmpl in package.path:gmatch("[^;]+") do
		local d = tmpl:match("^(.*/)%?%.lua$")
		if d then cands[#cands + 1] = d .. name end
	end
	for _, c in ipairs(cands) do
		local f = io.open(c, "rb")
		if f then
			f:close()
			return c
		end
	end
	return nil, "no " .. name .. " in " .. table.concat(cands, ", ")
end

-- Reads path (found as resolve() says) and declares every good rule with hx.signature. Returns the
-- number loaded and the list of
-- errors (each also logged at "warning"). An unreadable file is an error: a policy that names a rules
-- file should not start silently without it. opts: hx, defaults (action, proto, ports, nocase).
function M.load(path, opts)
	opts = opts or {}
	local hx = opts.hx or require("hyperion")
	if type(path) ~= "string" then error("sigfile.load: path must be a string", 2) end
	local found, rerr = M.resolve(path, 2)
	if not found then error("sigfile.load: cannot open " .. rerr, 2) end
	path = found
	local f, oerr = io.open(path, "rb")
	if not f then error("sigfile.load: cannot open " .. tostring(oerr), 2) end
	local text = f:read("*a")
	f:close()
	local rules, errors = M.parse(text, path, opts.defaults)
	local count = 0
	for _, r in ipairs(rules) do
		local line = r.line
		r.line = nil
		local okc, err = pcall(hx.signature, r)
		if okc then
			count = count + 1
		else
			errors[#errors + 1] = string.format("%s:%d: %s", path, line, tostring(err))
		end
	end
	table.sort(errors, function(a, b)
		return tonumber(a:match(":(%d+):")) < tonumber(b:match(":(%d+):"))
	end)
	for _, e in ipairs(errors) do hx.log("warning", "sigfile: skipped " .. e) end
	return count, errors
end

return M
