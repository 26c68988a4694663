-- Tests for hyperion.sigfile: the rule syntax, escapes, options, and bad lines reported with file:line.
local t = require("tap")
local fake = require("fake_hx")
local sigfile = require("hyperion.sigfile")

local rules, errs = sigfile.parse([[
# a comment line

etc-passwd   "/etc/passwd"     action=drop proto=tcp ports=80,8080
jndi         "${jndi:"         action=ban nocase   # trailing comment
bare         cmd.exe
esc          "a\x00b\"c\\d#e"  action=alert proto=udp
]], "t.rules")
t.eq(#errs, 0, "valid file parses without errors")
t.eq(#rules, 4, "four rules")
t.eq(rules[1].name, "etc-passwd", "name")
t.eq(rules[1].pattern, "/etc/passwd", "quoted pattern")
t.eq(rules[1].action, "drop", "action")
t.eq(rules[1].proto, "tcp", "proto")
t.eq(table.concat(rules[1].ports, ","), "80,8080", "ports list")
t.eq(rules[1].line, 3, "line number kept")
t.eq(rules[2].nocase, true, "nocase flag")
t.eq(rules[2].action, "ban", "ban action")
t.eq(rules[3].pattern, "cmd.exe", "bare pattern")
t.eq(rules[3].action, "drop", "default action drop")
t.eq(rules[3].proto, "any", "default proto any")
t.eq(rules[3].ports, nil, "default: all ports")
t.eq(rules[3].nocase, nil, "default: case-sensitive")
t.eq(rules[4].pattern, 'a\0b"c\\d#e', "escapes \\xNN \\\" \\\\ and # inside quotes")
t.eq(#rules[4].pattern, 9, "NUL byte kept in the pattern")

local bad = {
	{ 'x "unterminated', "unterminated" },
	{ 'x "a\\q"', "unknown escape" },
	{ 'x "a\\xZZ"', "bad \\x escape" },
	{ 'x "abc"def', "after a closing quote" },
	{ "onlyname", "want: name pattern" },
	{ 'x "abc" action=nuke', "bad action" },
	{ 'x "abc" proto=sctp', "bad proto" },
	{ 'x "abc" ports=0', "bad port" },
	{ 'x "abc" ports=80,,81', "bad port" },
	{ 'x "abc" ports=1,2,3,4,5,6,7,8,9', "more than 8 ports" },
	{ 'x "abc" fast', "unknown option" },
	{ 'x "abc" nocase nocase', "given twice" },
	{ 'x ""', "empty pattern" },
	{ 'x "' .. string.rep("a", 65) .. '"', "exceeds 64" },
	{ string.rep("n", 48) .. ' "abc"', "name longer" },
	{ 'bad/name "abc"', "bad name" },
	{ 'x ab"c', "stray quote" },
}
for _, case in ipairs(bad) do
	local r, e = sigfile.parse(case[1], "f")
	t.ok(#r == 0 and #e == 1 and e[1]:find(case[2], 1, true) ~= nil,
		"rejects " .. case[1]:sub(1, 30) .. " (" .. case[2] .. ")" .. (e[1] and "" or ": no error"))
end
t.ok(select(2, sigfile.parse('x "' .. string.rep("a", 64) .. '"'))[1] == nil, "64-byte pattern accepted")

local r2, e2 = sigfile.parse('a "1"\nb "2" action=nope\na "3"\nc "4"\n', "dup.rules")
t.eq(#r2, 2, "good lines around bad ones still load")
t.eq(e2[1], "dup.rules:2: bad action 'nope' (drop, alert, ban)", "error carries file:line")
t.eq(e2[2], "dup.rules:3: duplicate name 'a' (first on line 1)", "duplicate names reported")
local r3 = sigfile.parse('a "1"', "x", { action = "alert", proto = "tcp" })
t.eq(r3[1].action .. "/" .. r3[1].proto, "alert/tcp", "caller defaults apply")
local r4 = sigfile.parse('a "1"\r\nb "2"\r\n', "crlf")
t.eq(#r4, 2, "CRLF line endings")
t.eq(r4[2].pattern, "2", "no CR left in pattern")

-- load(): through hx.signature, errors logged.
local path = os.tmpname()
local f = assert(io.open(path, "w"))
f:write('one "aaa" action=drop proto=tcp\n\ntwo bbb proto=bogus\nthree "ccc" nocase\nfour "ddd"\n')
f:close()
local hx = fake.new({ sig_max = 2 })
local n, errors = sigfile.load(path, { hx = hx })
t.eq(n, 2, "two rules loaded")
t.eq(#errors, 2, "bad line and rejected signature both reported")
t.ok(errors[1]:find(path .. ":3:", 1, true) ~= nil, "parse error names file:3")
t.ok(errors[2]:find(path .. ":5:", 1, true) ~= nil and errors[2]:find("too many", 1, true) ~= nil,
	"hx.signature refusal names file:5")
t.eq(hx.sigs.one.pattern, "aaa", "rule one declared")
t.eq(hx.sigs.three.nocase, true, "rule three declared with nocase")
t.eq(hx.sigs.one.line, nil, "no internal fields passed to hx.signature")
t.eq(#hx.logs, 2, "each error logged")
t.eq(hx.logs[1].level, "warning", "logged as warning")
os.remove(path)
t.raises(function() sigfile.load("/nonexistent/x.rules", { hx = hx }) end, "cannot open", "missing file raises")
t.raises(function() sigfile.load("no-such.rules", { hx = hx }) end, "no no-such.rules in", "missing relative file lists where it looked")

-- Relative names: beside the calling script first, then package.path directories.
local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir .. "/pol " .. dir .. "/lib")
local function write(p, text) local fh = assert(io.open(p, "w")); fh:write(text); fh:close() end
write(dir .. "/pol/local.rules", 'beside "xyz"\n')
write(dir .. "/pol/policy.lua", 'local n = require("hyperion.sigfile").load("local.rules", { hx = ... })\nreturn n\n')
local hx2 = fake.new()
t.eq(loadfile(dir .. "/pol/policy.lua")(hx2), 1, "rules file found beside the policy that loads it")
t.ok(hx2.sigs.beside ~= nil, "and its rule declared")
write(dir .. "/lib/onpath.rules", 'onpath "abc"\n')
local saved = package.path
package.path = dir .. "/lib/?.lua;" .. package.path
t.eq(sigfile.resolve("onpath.rules"), dir .. "/lib/onpath.rules", "rules file found in a package.path directory")
package.path = saved
t.eq(sigfile.resolve("/abs/x.rules"), "/abs/x.rules", "absolute path taken as is")
os.execute("rm -r " .. dir)

t.done()
