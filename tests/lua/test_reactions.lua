-- Drives autoban, portscan and synflood through a fake hx with synthetic events and a fake clock.
local t = require("tap")
local fake = require("fake_hx")

local function fresh(mod, opts, store)
	local hx = fake.new({ store = store })
	opts = opts or {}
	opts.hx = hx
	return hx, require("hyperion.reactions." .. mod).setup(opts)
end

local function logged(hx, needle)
	for _, l in ipairs(hx.logs) do
		if l.msg:find(needle, 1, true) then return true end
	end
	return false
end

------------------------------------------------------------------------------ autoban
do
	local hx = fresh("autoban")
	for _ = 1, 4 do hx.emit("invalid", { src = "203.0.113.5", reason = "drop_invalid" }) end
	t.eq(hx.ban_count(), 0, "autoban: 4 invalid events do not ban")
	hx.emit("invalid", { src = "203.0.113.5", reason = "drop_invalid" })
	local b = hx.bans["203.0.113.5"]
	t.ok(b ~= nil, "autoban: the 5th event bans")
	t.eq(b and b.ttl, 600, "autoban: first ban lasts the escalation base (10m)")
	t.ok(b and b.reason:find("^autoban: 5 events in 10m") ~= nil, "autoban: reason says why")
	t.ok(logged(hx, "banned 203.0.113.5 for 10m"), "autoban: ban logged")
	hx.emit("invalid", { src = "203.0.113.5" })
	t.eq(#hx.ban_log, 1, "autoban: an already banned source is not banned again")

	-- Escalation: after the ban ends, a repeat offence doubles the ban, then doubles again.
	hx.advance(601)
	for _ = 1, 5 do hx.emit("invalid", { src = "203.0.113.5" }) end
	t.eq(hx.bans["203.0.113.5"] and hx.bans["203.0.113.5"].ttl, 1200, "autoban: second ban doubles")
	t.ok(hx.bans["203.0.113.5"].reason:find("(ban #2)", 1, true) ~= nil, "autoban: reason counts bans")
	hx.advance(1201)
	for _ = 1, 5 do hx.emit("invalid", { src = "203.0.113.5" }) end
	t.eq(hx.bans["203.0.113.5"] and hx.bans["203.0.113.5"].ttl, 2400, "autoban: third ban doubles again")

	-- Escalation survives a restart: a new state over the same hx.store continues the series.
	local hx2 = fresh("autoban", nil, hx.store)
	hx2.t = hx.t + 2401
	for _ = 1, 5 do hx2.emit("invalid", { src = "203.0.113.5" }) end
	t.eq(hx2.bans["203.0.113.5"] and hx2.bans["203.0.113.5"].ttl, 4800, "autoban: history survives restart")
end

do
	local hx = fresh("autoban")
	for _ = 1, 4 do hx.emit("invalid", { src = "198.51.100.9" }) end
	hx.advance(601)
	for _ = 1, 4 do hx.emit("invalid", { src = "198.51.100.9" }) end
	t.eq(hx.ban_count(), 0, "autoban: events spread over two windows do not ban")
	hx.emit("invalid", { src = "198.51.100.8", suppressed = 4 })
	t.ok(hx.bans["198.51.100.8"] ~= nil, "autoban: suppressed events count (1 + 4 = 5)")
	for _ = 1, 19 do hx.emit("policy", { src = "198.51.100.7" }) end
	t.eq(hx.bans["198.51.100.7"], nil, "autoban: 19 refused flows (weight 0.25) do not ban")
	hx.emit("policy", { src = "198.51.100.7" })
	t.ok(hx.bans["198.51.100.7"] ~= nil, "autoban: the 20th refused flow bans")
	for _ = 1, 10 do hx.emit("match", { src = "198.51.100.6", action = "alert", sig = "watch" }) end
	t.eq(hx.bans["198.51.100.6"], nil, "autoban: alert-only matches are not evidence")
	for i = 1, 4 do hx.emit("match", { src = "198.51.100.6", sport = 41000 + i, action = "drop", sig = "etc-passwd" }) end
	t.eq(hx.bans["198.51.100.6"], nil, "autoban: 4 drop matches do not ban")
	for _ = 1, 10 do hx.emit("match", { src = "198.51.100.6", sport = 41001, action = "drop", sig = "etc-passwd" }) end
	t.eq(hx.bans["198.51.100.6"], nil, "autoban: retransmissions of one dropped request count once")
	hx.emit("match", { src = "198.51.100.6", sport = 41005, action = "drop", sig = "etc-passwd" })
	t.ok(hx.bans["198.51.100.6"] and hx.bans["198.51.100.6"].reason:find("sig etc-passwd", 1, true),
		"autoban: 5th drop match bans, reason names the signature")
	hx.emit("match", { src = "198.51.100.5", action = "ban", sig = "log4shell" })
	t.ok(hx.bans["198.51.100.5"] and hx.bans["198.51.100.5"].reason:find("signature log4shell", 1, true),
		"autoban: a ban-action signature bans on the first hit")
	hx.emit("match", { src = "192.0.2.44", sport = 42000, action = "drop", sig = "etc-passwd" })
	hx.emit("match", { src = "192.0.2.44", sport = 42000, action = "drop", sig = "etc-passwd" })
	t.eq(hx.bans["192.0.2.44"], nil, "autoban: a repeat on one flow with nothing suppressed is a retransmission")
	hx.emit("match", { src = "192.0.2.44", sport = 42000, action = "drop", sig = "etc-passwd", suppressed = 40 })
	t.ok(hx.bans["192.0.2.44"] ~= nil, "autoban: a flood on one flow (40 events suppressed) counts in full")
	hx.unban("198.51.100.5")    -- the ban ran out; the dropped request is still being retransmitted
	hx.emit("match", { src = "198.51.100.5", action = "ban", sig = "log4shell" })
	t.eq(hx.bans["198.51.100.5"], nil, "autoban: a retransmitted request does not earn a second ban")
	hx.emit("match", { src = "198.51.100.5", sport = 41999, action = "ban", sig = "log4shell" })
	t.ok(hx.bans["198.51.100.5"] ~= nil, "autoban: a new request from the same source bans again")
	for _ = 1, 50 do
		hx.emit("invalid", { src = "127.0.0.1" })
		hx.emit("match", { src = "::1", action = "ban", sig = "x" })
	end
	t.eq(hx.bans["127.0.0.1"], nil, "autoban: loopback never banned")
	t.eq(hx.bans["::1"], nil, "autoban: ::1 never banned")
end

do
	local hx = fresh("autoban", { allow = { "10.0.0.0/8" }, threshold = 2, escalate = false, bantime = "1h",
		weights = { policy = 1 } })
	for _ = 1, 10 do hx.emit("invalid", { src = "10.9.9.9" }) end
	t.eq(hx.ban_count(), 0, "autoban: configured allowlist never banned")
	hx.emit("policy", { src = "203.0.113.1" }); hx.emit("policy", { src = "203.0.113.1" })
	t.eq(hx.bans["203.0.113.1"] and hx.bans["203.0.113.1"].ttl, 3600, "autoban: fixed bantime without escalation")
	hx.emit("invalid", { src = "203.0.113.2" }); hx.emit("invalid", { src = "203.0.113.2" })
	t.ok(hx.bans["203.0.113.2"] ~= nil, "autoban: weights merge with the defaults (invalid still counts)")
	t.raises(function() require("hyperion.reactions.autoban").setup{ hx = fake.new(), threshhold = 3 } end,
		"unknown option 'threshhold'", "autoban: a misspelt option fails at load")
	t.raises(function() require("hyperion.reactions.autoban").setup{ hx = fake.new(), allow = { "nope" } } end,
		"allow", "autoban: a bad allowlist entry fails at load")
	t.raises(function() require("hyperion.reactions.autoban").setup{ hx = fake.new(), window = "soon" } end,
		"window: bad duration", "autoban: a bad window fails at load")
end

------------------------------------------------------------------------------ prefix aggregation
do
	local hx = fresh("autoban", { threshold = 1 })
	for i = 1, 4 do hx.emit("invalid", { src = "198.51.100." .. i }) end
	t.eq(hx.bans["198.51.100.0/24"], nil, "prefix: 4 banned addresses of a /24 do not ban it")
	hx.emit("invalid", { src = "198.51.100.5" })
	t.ok(hx.bans["198.51.100.0/24"] ~= nil, "prefix: the 5th banned address bans the /24")
	for i = 1, 5 do hx.emit("invalid", { src = "2001:db8:5::" .. i, dst = "2001:db8::1" }) end
	t.ok(hx.bans["2001:db8:5::/64"] ~= nil, "prefix: IPv6 /64 aggregated")
	for i = 66, 72 do hx.emit("invalid", { src = "192.0.2." .. i, dst = "192.0.2.1" }) end
	t.eq(hx.bans["192.0.2.0/24"], nil, "prefix: the host's own /24 is never banned")
	t.ok(hx.bans["192.0.2.70"] ~= nil, "prefix: its addresses are still banned one by one")
end

------------------------------------------------------------------------------ portscan
do
	local hx = fresh("portscan")
	for p = 1, 14 do hx.emit("policy", { src = "203.0.113.20", dport = p }) end
	t.eq(hx.ban_count(), 0, "portscan: 14 distinct ports do not ban")
	hx.emit("policy", { src = "203.0.113.20", dport = 15 })
	local b = hx.bans["203.0.113.20"]
	t.ok(b ~= nil, "portscan: the 15th distinct port bans")
	t.eq(b and b.ttl, 3600, "portscan: first ban 1h")
	t.ok(b and b.reason:find("^portscan: 15 ports") ~= nil, "portscan: reason says why")
	for _ = 1, 100 do hx.emit("flow_new", { src = "203.0.113.21", dport = 80, verdict = "pass" }) end
	t.eq(hx.bans["203.0.113.21"], nil, "portscan: one port many times is not a scan")
	for p = 1, 100 do hx.emit("flow_new", { src = "203.0.113.21", dport = 80, suppressed = 50 }) end
	t.eq(hx.bans["203.0.113.21"], nil, "portscan: suppressed flow_new events are not counted as ports")
	for p = 1, 5 do hx.emit("policy", { src = "203.0.113.22", dport = 1000 + p, suppressed = 2 }) end
	t.ok(hx.bans["203.0.113.22"] ~= nil, "portscan: suppressed refused probes count toward the ports")
	for p = 1, 15 do
		hx.emit("policy", { src = "203.0.113.23", dport = 5000 + p, proto = 17, proto_name = "udp" })
	end
	t.ok(hx.bans["203.0.113.23"] ~= nil, "portscan: UDP scan banned")
	for p = 1, 15 do hx.emit("invalid", { src = "203.0.113.24", dport = 7000 + p }) end
	t.ok(hx.bans["203.0.113.24"] ~= nil, "portscan: stealth (invalid) TCP scan banned")
	for p = 1, 15 do
		hx.emit("invalid", { src = "203.0.113.25", dport = 7000 + p, proto = 17, proto_name = "udp" })
	end
	t.eq(hx.bans["203.0.113.25"], nil, "portscan: malformed UDP is not a scan")
	for h = 1, 20 do hx.emit("flow_new", { src = "203.0.113.26", dst = "192.0.2." .. h, dport = 22 }) end
	t.ok(hx.bans["203.0.113.26"] ~= nil, "portscan: host sweep (20 hosts, one port) banned")
	for p = 1, 10 do hx.emit("policy", { src = "203.0.113.27", dport = p }) end
	hx.advance(61)
	for p = 11, 20 do hx.emit("policy", { src = "203.0.113.27", dport = p }) end
	t.eq(hx.bans["203.0.113.27"], nil, "portscan: a slow scan across two windows is not banned")
	for p = 1, 30 do hx.emit("policy", { src = "127.0.0.1", dport = p }) end
	t.eq(hx.bans["127.0.0.1"], nil, "portscan: loopback never banned")
	-- Repeat scan after the ban: escalates.
	hx.advance(3601)
	for p = 100, 115 do hx.emit("policy", { src = "203.0.113.20", dport = p }) end
	t.eq(hx.bans["203.0.113.20"] and hx.bans["203.0.113.20"].ttl, 7200, "portscan: repeat scanner's ban doubles")
end

------------------------------------------------------------------------------ synflood
do
	local hx, sf = fresh("synflood", { ban_after = 100, max_bans = 2, quiet = "30s" })
	hx.emit("ratelimit", { src = "203.0.113.40", reason = "drop_rate_syn" })
	t.eq(hx.limits["203.0.113.40"] and hx.limits["203.0.113.40"].syn, 5, "synflood: first ratelimit tightens syn")
	t.eq(hx.limits["203.0.113.40"] and hx.limits["203.0.113.40"].pps, 500, "synflood: and pps")
	t.ok(logged(hx, "flood started"), "synflood: flood start logged")
	hx.emit("ratelimit", { src = "203.0.113.40", suppressed = 97 })
	t.eq(#hx.limit_log, 1, "synflood: tightened once, not per event")
	hx.advance(1)
	t.eq(hx.ban_count(), 0, "synflood: 99 rate-limited packets do not ban")
	-- Three sources over the threshold, two bans per check: the worst two first.
	hx.emit("ratelimit", { src = "203.0.113.41", suppressed = 299 })
	hx.emit("ratelimit", { src = "203.0.113.42", suppressed = 199 })
	hx.emit("ratelimit", { src = "203.0.113.43", suppressed = 149 })
	t.eq(hx.ban_count(), 0, "synflood: bans wait for the periodic check")
	hx.advance(1)
	t.ok(hx.bans["203.0.113.41"] ~= nil and hx.bans["203.0.113.42"] ~= nil, "synflood: the two worst banned")
	t.eq(hx.bans["203.0.113.43"], nil, "synflood: the third waits (max_bans per check)")
	t.eq(hx.limits["203.0.113.41"].syn, 0, "synflood: a banned source's limits are restored")
	hx.advance(1)
	t.ok(hx.bans["203.0.113.43"] ~= nil, "synflood: the third banned at the next check")
	t.eq(hx.bans["203.0.113.41"].ttl, 600, "synflood: ban time from escalation base")
	-- Relax: .40 stays under the threshold and goes quiet.
	t.eq(hx.limits["203.0.113.40"].syn, 5, "synflood: still tightened while recent")
	hx.advance(30)
	t.eq(hx.limits["203.0.113.40"].syn, 0, "synflood: relaxed after 30s quiet")
	t.eq(hx.limits["203.0.113.40"].pps, 0, "synflood: relaxed pps back to the config (0)")
	t.ok(logged(hx, "flood over"), "synflood: flood end logged")
	t.eq(sf.tracked:size(), 0, "synflood: nothing tracked after the flood")
	-- A persistent flooder keeps its limits while it keeps flooding.
	for _ = 1, 60 do
		hx.emit("ratelimit", { src = "203.0.113.44" })
		hx.advance(1)
	end
	t.eq(hx.limits["203.0.113.44"].syn, 5, "synflood: a steady flooder stays tightened")
	t.eq(hx.bans["203.0.113.44"], nil, "synflood: below ban_after per window it is not banned")
	for _ = 1, 200 do hx.emit("ratelimit", { src = "127.0.0.1", suppressed = 10 }) end
	hx.advance(1)
	t.eq(hx.limits["127.0.0.1"], nil, "synflood: loopback never tightened")
	t.eq(hx.bans["127.0.0.1"], nil, "synflood: loopback never banned")
end

do
	-- Reload mid-flood: the new state adopts the tightened sources from hx.store and relaxes them later.
	local hx = fresh("synflood")
	hx.emit("ratelimit", { src = "203.0.113.50" })
	t.ok(hx.store.synflood.tightened["203.0.113.50"], "synflood: tightened source recorded in hx.store")
	local hx2, sf2 = fresh("synflood", nil, hx.store)
	hx2.t = hx.t
	hx2.advance(1)
	t.ok(sf2.tracked:peek("203.0.113.50") ~= nil, "synflood: reloaded state adopts it")
	hx2.advance(31)
	t.eq(hx2.limits["203.0.113.50"] and hx2.limits["203.0.113.50"].syn, 0, "synflood: and relaxes it when quiet")
	t.eq(next(hx.store.synflood.tightened), nil, "synflood: relaxed sources leave hx.store")
end

do
	-- Spoofed flood: many sources, memory bounded by cap; evicted sources get their limits back.
	local hx, sf = fresh("synflood", { cap = 50, ban_after = 1000 })
	for i = 1, 500 do hx.emit("ratelimit", { src = "198.51." .. math.floor(i / 250) .. "." .. (i % 250) }) end
	t.eq(sf.tracked:size(), 50, "synflood: tracked sources bounded by cap")
	local relaxed = 0
	for _, l in ipairs(hx.limit_log) do if l.syn == 0 then relaxed = relaxed + 1 end end
	t.eq(relaxed, 450, "synflood: sources pushed out by the cap are relaxed")
	local n = 0
	for _ in pairs(hx.store.synflood.tightened) do n = n + 1 end
	t.eq(n, 50, "synflood: persisted set bounded by the cap too")
end

------------------------------------------------------------------------------ combined policies
do
	local hx = fake.new().install()
	package.loaded["hyperion.reactions.autoban"] = nil
	dofile("scripts/default.lua")
	t.eq(hx.cfg and hx.cfg.mode, "enforce", "default.lua: config set")
	t.ok(hx.allowed["127.0.0.0/8"] and hx.allowed["::1"], "default.lua: loopback allowlisted")
	t.eq(#hx.sig_order, 11, "default.lua: every rule of signatures.rules loaded")
	t.eq(hx.sigs.log4shell and hx.sigs.log4shell.action, "ban", "default.lua: log4shell bans")
	t.eq(hx.sigs["sqli-union"] and hx.sigs["sqli-union"].nocase, true, "default.lua: union select nocase")
	t.eq(hx.sigs["etc-passwd"] and hx.sigs["etc-passwd"].pattern, "/etc/passwd", "default.lua: /etc/passwd")
	for _, k in ipairs({ "match", "invalid", "policy", "flow_new", "ratelimit" }) do
		t.eq(hx.hooks[k] and #hx.hooks[k], 1, "default.lua: one hx.on for " .. k .. " (fan-out inside)")
	end
	-- A scan reaches both autoban and portscan through the one hook: portscan bans at 15 ports.
	for p = 1, 15 do hx.emit("policy", { src = "203.0.113.60", dport = p }) end
	t.ok(hx.bans["203.0.113.60"] and hx.bans["203.0.113.60"].reason:find("^portscan") ~= nil,
		"default.lua: a port scan is banned by portscan")
	-- Shared escalation: the next offence of the same source, caught by autoban, gets ban #2.
	hx.advance(3601)
	hx.emit("match", { src = "203.0.113.60", action = "ban", sig = "log4shell" })
	t.eq(hx.bans["203.0.113.60"] and hx.bans["203.0.113.60"].ttl, 1200,
		"default.lua: offences add up across reactions (ban #2 doubles)")
	t.eq(hx.store.bans and hx.store.bans.n, 1, "default.lua: history in hx.store.bans")
	for _, s in ipairs({ "autoban", "portscan", "synflood" }) do
		local h = fake.new().install()
		dofile("scripts/" .. s .. ".lua")
		t.ok(next(h.hooks) ~= nil and #h.timers > 0, "scripts/" .. s .. ".lua runs as a policy on its own")
	end
	package.loaded["hyperion"] = nil
end

------------------------------------------------------------------------------ the shared ban path
do
	local common = require("hyperion.reactions.common")
	local hx = fake.new()
	local b = common.banner("test", { hx = hx, allow = { "10.0.0.0/8" } })
	t.eq(select(2, b:ban("10.1.1.1", "x")), "allowlisted", "banner: refuses an allowlisted source")
	t.eq(select(2, b:ban("127.0.0.2", "x")), "allowlisted", "banner: loopback always allowlisted")
	t.eq(select(2, b:ban("not-an-ip", "x")), "not an address", "banner: refuses junk")
	local ttl = b:ban("203.0.113.80", string.rep("r", 300))
	t.eq(ttl, 600, "banner: bans with the escalation base")
	t.eq(#hx.bans["203.0.113.80"].reason, common.REASON_MAX, "banner: reason cut to what the daemon keeps")
	t.eq(select(2, b:ban("203.0.113.80", "x")), "already banned", "banner: no double ban")
	hx.ban = function() error("ban table full") end
	local r, why = b:ban("203.0.113.81", "x")
	t.ok(r == nil and why:find("ban table full", 1, true) ~= nil, "banner: hx.ban failure returned")
	t.ok(logged(hx, "ban of 203.0.113.81 failed"), "banner: hx.ban failure logged")
end

------------------------------------------------------------------------------ hooks fan-out
do
	local hooks = require("hyperion.hooks")
	local hx = fake.new()
	local seen = {}
	hooks.on("match", function() seen[#seen + 1] = "a"; error("boom") end, hx)
	hooks.on("match", function() seen[#seen + 1] = "b" end, hx)
	local okc, err = pcall(hx.emit, "match", {})
	t.eq(table.concat(seen), "ab", "hooks: every handler runs even after one fails")
	t.ok(not okc and tostring(err):find("boom", 1, true) ~= nil, "hooks: the first error is re-raised")
	t.eq(#hx.hooks.match, 1, "hooks: one hx.on registration per kind")
	t.raises(function() hooks.on("nonsense", function() end, hx) end, "unknown event kind", "hooks: bad kind")
end

t.done()
