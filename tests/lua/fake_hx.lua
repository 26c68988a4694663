-- A stand-in for the `hyperion` (hx) module: records bans, logs, limits and timers, with a clock tests move.
local cidr = require("hyperion.cidr")

local fake = {}

local KINDS = { match = true, block = true, invalid = true, ratelimit = true, flow_new = true,
	flow_end = true, policy = true }

-- Event defaults mirror what the datapath reports for an inbound TCP packet to the host.
local EV_DEFAULTS = { src = "203.0.113.9", dst = "192.0.2.1", sport = 40000, dport = 80, proto = 6,
	proto_name = "tcp", verdict = "drop", reason = "drop_port", state = "none", payload = "",
	suppressed = 0, packets = 0, bytes = 0, sig_id = 0xffffffff }

function fake.new(opts)
	opts = opts or {}
	local hx = {
		t = opts.now or 1000,  -- the fake monotonic clock, in seconds
		store = opts.store or {},
		bans = {},             -- cidr -> { ttl, reason, expires }
		ban_log = {},          -- every hx.ban call in order: { cidr, ttl, reason, t }
		unban_log = {},
		allowed = {},
		limits = {},           -- src -> last hx.ratelimit table
		limit_log = {},
		logs = {},             -- { level, msg }
		sigs = {},
		sig_order = {},
		hooks = {},
		timers = {},
		cfg = nil,
	}

	function hx.now() return hx.t end

	function hx.config(t) hx.cfg = t end

	function hx.signature(s)
		if type(s) ~= "table" or type(s.name) ~= "string" or type(s.pattern) ~= "string" then
			error("hx.signature: name and pattern required", 2)
		end
		if opts.sig_max and #hx.sig_order >= opts.sig_max then
			error("hx.signature: too many signatures", 2)
		end
		if not hx.sigs[s.name] then hx.sig_order[#hx.sig_order + 1] = s.name end
		hx.sigs[s.name] = s
	end

	function hx.unsignature(name) hx.sigs[name] = nil end

	-- Appends, like the real module is asked to: several hooks per kind run in registration order.
	function hx.on(kind, fn)
		if not KINDS[kind] then error("hx.on: unknown event kind '" .. tostring(kind) .. "'", 2) end
		hx.hooks[kind] = hx.hooks[kind] or {}
		table.insert(hx.hooks[kind], fn)
	end

	function hx.ban(c, ttl, reason)
		local key = cidr.normalise(c)
		hx.bans[key] = { ttl = ttl, reason = reason, expires = (ttl and ttl > 0) and hx.t + ttl or nil }
		hx.ban_log[#hx.ban_log + 1] = { cidr = key, ttl = ttl, reason = reason, t = hx.t }
		return true
	end

	function hx.unban(c)
		local key = cidr.normalise(c)
		hx.unban_log[#hx.unban_log + 1] = key
		local had = hx.bans[key] ~= nil
		hx.bans[key] = nil
		return had
	end

	function hx.banned(ip)
		local exact = hx.bans[ip]
		if exact and not (exact.expires and exact.expires <= hx.t) then
			return true, { cidr = ip, ttl = exact.ttl, reason = exact.reason, expires = exact.expires }
		end
		for key, b in pairs(hx.bans) do
			if b.expires and b.expires <= hx.t then
				hx.bans[key] = nil
			elseif cidr.contains(key, ip) then
				return true, { cidr = key, ttl = b.ttl, reason = b.reason, expires = b.expires }
			end
		end
		return false
	end

	function hx.allow(c) hx.allowed[cidr.normalise(c)] = true end

	function hx.ratelimit(src, t)
		hx.limits[src] = t
		hx.limit_log[#hx.limit_log + 1] = { src = src, syn = t and t.syn, pps = t and t.pps, t = hx.t }
	end

	function hx.flow() return nil end
	function hx.flows() return function() return nil end end
	function hx.stats() return {} end

	function hx.log(level, msg) hx.logs[#hx.logs + 1] = { level = level, msg = msg } end

	function hx.every(sec, fn)
		local tm = { at = hx.t + sec, every = sec, fn = fn }
		hx.timers[#hx.timers + 1] = tm
		return tm
	end

	function hx.after(sec, fn)
		local tm = { at = hx.t + sec, fn = fn }
		hx.timers[#hx.timers + 1] = tm
		return tm
	end

	-- Test control: move the clock forward, firing due timers in time order on the way.
	function hx.advance(dt)
		local target = hx.t + dt
		while true do
			local next_tm
			for _, tm in ipairs(hx.timers) do
				if not tm.done and tm.at <= target and (not next_tm or tm.at < next_tm.at) then next_tm = tm end
			end
			if not next_tm then break end
			hx.t = math.max(hx.t, next_tm.at)
			if next_tm.every then next_tm.at = next_tm.at + next_tm.every else next_tm.done = true end
			next_tm.fn()
		end
		hx.t = target
	end

	-- Test control: deliver one event of kind to every hook; fields override EV_DEFAULTS.
	function hx.emit(kind, fields)
		local ev = {}
		for k, v in pairs(EV_DEFAULTS) do ev[k] = v end
		for k, v in pairs(fields or {}) do ev[k] = v end
		ev.kind, ev.ts = kind, ev.ts or hx.t
		function ev.copy(self)
			local c = {}
			for k, v in pairs(self) do if k ~= "copy" then c[k] = v end end
			return c
		end
		for _, fn in ipairs(hx.hooks[kind] or {}) do fn(ev) end
	end

	function hx.ban_count()
		local n = 0
		for _ in pairs(hx.bans) do n = n + 1 end
		return n
	end

	-- Test control: make this fake what require("hyperion") returns.
	function hx.install()
		package.loaded["hyperion"] = hx
		return hx
	end

	return hx
end

return fake
