-- Tests for hyperion.duration: accepted forms, pass-through numbers, clear errors for junk.
local t = require("tap")
local d = require("hyperion.duration")

t.eq(d.parse("90s"), 90, "seconds")
t.eq(d.parse("10m"), 600, "minutes")
t.eq(d.parse("1h"), 3600, "hours")
t.eq(d.parse("1d"), 86400, "days")
t.eq(d.parse("2w"), 1209600, "weeks")
t.eq(d.parse("1h30m"), 5400, "compound h+m")
t.eq(d.parse("1d2h3m4s"), 93784, "compound d+h+m+s")
t.eq(d.parse("500ms"), 0.5, "milliseconds")
t.eq(d.parse("1.5h"), 5400, "fractional unit")
t.eq(d.parse(" 10m "), 600, "blanks trimmed")
t.eq(d.parse("42"), 42, "numeric string is seconds")
t.eq(d.parse(30), 30, "number passes through")
t.eq(d.parse(0.25), 0.25, "fractional number passes through")
t.eq(d.parse(0), 0, "zero allowed")

for _, junk in ipairs({ "", "10x", "m", "h10", "10 m", "-5s", "1h-30m", "ten minutes", "1h30" }) do
	t.raises(function() d.parse(junk) end, "bad duration", "rejects '" .. junk .. "'")
end
t.raises(function() d.parse(-1) end, "bad duration", "rejects negative number")
t.raises(function() d.parse(0 / 0) end, "bad duration", "rejects NaN")
t.raises(function() d.parse(math.huge) end, "bad duration", "rejects infinity")
t.raises(function() d.parse({}) end, "type table", "rejects a table")
t.raises(function() d.parse("soon", "bantime") end, "bantime: bad duration 'soon'", "error names the option")

t.eq(d.format(5400), "1h30m", "format compound")
t.eq(d.format(90), "1m30s", "format minutes and seconds")
t.eq(d.format(604800), "1w", "format week")
t.eq(d.format(0), "0s", "format zero")

t.done()
