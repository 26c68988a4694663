-- Tests for hyperion.prefix: the N-th banned address of a /24 or /64 bans the prefix, and no sooner.
local t = require("tap")
local fake = require("fake_hx")
local prefix = require("hyperion.prefix")
local escalate = require("hyperion.escalate")

local hx = fake.new()
local banned = {}
local p = prefix.new{ hx = hx, threshold = 3, on_ban = function(pfx, ttl, m) banned[#banned + 1] = { pfx, ttl, m } end }

t.eq(p:add("192.0.2.1", 600), nil, "first member: no prefix ban")
t.eq(p:add("192.0.2.2", 1200), nil, "second member: no prefix ban")
t.eq(p:add("192.0.2.2", 1200), nil, "same address twice counts once")
t.eq(p:add("198.51.100.3", 600), nil, "other /24 counted separately")
t.eq(hx.ban_count(), 0, "nothing banned yet")
local pfx, ttl = p:add("192.0.2.3", 600)
t.eq(pfx, "192.0.2.0/24", "third member bans the /24")
t.eq(ttl, 1200, "prefix ban lasts as long as the longest member ban")
t.ok(hx.bans["192.0.2.0/24"] ~= nil, "hx.ban called with the prefix")
t.ok(hx.bans["192.0.2.0/24"].reason:find("3 addresses", 1, true) ~= nil, "reason says why")
t.eq(#banned, 1, "on_ban called")
t.eq(table.concat(banned[1][3], ","), "192.0.2.1,192.0.2.2,192.0.2.3", "on_ban gets the members")
t.eq(p:add("192.0.2.4", 600), nil, "no second ban while the prefix ban lasts")
t.eq(#hx.ban_log, 1, "exactly one hx.ban")

-- Members expire with their bans.
local hx2 = fake.new()
local p2 = prefix.new{ hx = hx2, threshold = 2 }
p2:add("203.0.113.1", 60)
hx2.t = hx2.t + 61
t.eq(p2:members("203.0.113.77"), 0, "expired member no longer counts")
t.eq(p2:add("203.0.113.2", 60), nil, "so the second address does not trigger")
t.eq(p2:add("203.0.113.3", 0), "203.0.113.0/24", "permanent member ban counts")
t.eq(hx2.bans["203.0.113.0/24"].ttl, 0, "a permanent member ban makes the prefix ban permanent")

-- IPv6 /64 and configurable lengths.
local hx3 = fake.new()
local p3 = prefix.new{ hx = hx3, threshold = 2, prefix6 = 48, ttl = "1h" }
p3:add("2001:db8:1:1::1", 60)
t.eq(p3:add("2001:db8:1:2::1", 60), "2001:db8:1::/48", "v6 addresses of one /48 aggregated")
t.eq(hx3.bans["2001:db8:1::/48"].ttl, 3600, "fixed prefix ttl used")
local p3b = prefix.new{ hx = hx3, threshold = 2 }
p3b:add("2001:db8:5::1", 60)
t.eq(p3b:add("2001:db8:5:0:ffff::2", 60), "2001:db8:5::/64", "default v6 length is /64")

-- Allowlisted prefix never banned; escalation of repeated prefix bans.
local hx4 = fake.new()
local p4 = prefix.new{ hx = hx4, threshold = 2, allow = { "10.1.2.200" } }
p4:add("10.1.2.1", 60); p4:add("10.1.2.2", 60); p4:add("10.1.2.3", 60)
t.eq(hx4.ban_count(), 0, "prefix overlapping the allowlist is not banned")
t.ok(p4:members("10.1.2.0") <= 2, "members bounded by the threshold")
local esc = escalate.new{ store = {}, base = 100, clock = hx4.now }
local p5 = prefix.new{ hx = hx4, threshold = 2, escalate = esc }
p5:add("192.0.2.1", 10); p5:add("192.0.2.2", 10)
t.eq(hx4.bans["192.0.2.0/24"].ttl, 100, "first prefix ban: escalate base")
hx4.t = hx4.t + 101
p5:add("192.0.2.1", 10); p5:add("192.0.2.2", 10)
t.eq(hx4.bans["192.0.2.0/24"].ttl, 200, "repeat prefix ban doubles")

-- The host's own prefix is never banned.
local hx7 = fake.new()
local p7 = prefix.new{ hx = hx7, threshold = 2 }
p7:protect_local("192.0.2.1")
p7:protect_local("2001:db8::1")
p7:protect_local("not-an-ip")
p7:add("192.0.2.66", 60); p7:add("192.0.2.67", 60); p7:add("192.0.2.68", 60)
p7:add("2001:db8::66", 60); p7:add("2001:db8::67", 60)
t.eq(hx7.ban_count(), 0, "prefixes holding the host's own addresses are not banned")
p7:add("198.51.100.1", 60)
t.eq(p7:add("198.51.100.2", 60), "198.51.100.0/24", "other prefixes still aggregate")

-- Cap on tracked prefixes.
local p6 = prefix.new{ hx = fake.new(), threshold = 5, cap = 16 }
for i = 0, 255 do p6:add("198.51." .. i .. ".1", 60) end
t.eq(p6:size(), 16, "prefixes tracked bounded by cap")

t.raises(function() prefix.new{ hx = hx, prefix4 = 4 } end, "prefix4", "too short v4 prefix refused")
t.raises(function() prefix.new{ hx = hx, prefix6 = 129 } end, "prefix6", "bad v6 prefix refused")
t.raises(function() prefix.new{ hx = hx, threshold = 1 } end, "threshold", "threshold 1 refused")
t.raises(function() prefix.new{ hx = hx, ttl = "never" } end, "ttl: bad duration", "junk ttl refused")

t.done()
