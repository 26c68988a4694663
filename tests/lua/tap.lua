-- Minimal assertion helper for Lua tests: counts checks and prints the "N passed, N failed" line run.sh reads.
local tap = { passed = 0, failed = 0 }

local function report(cond, name, detail)
	if cond then
		tap.passed = tap.passed + 1
		print("ok - " .. name)
	else
		tap.failed = tap.failed + 1
		print("not ok - " .. name .. (detail and (" # " .. detail) or ""))
	end
	return cond
end

function tap.ok(cond, name)
	return report(cond and true or false, name)
end

function tap.eq(got, want, name)
	return report(got == want, name, string.format("got %s, want %s", tostring(got), tostring(want)))
end

-- Passes when fn raises an error whose message contains pattern (plain find, not a Lua pattern).
function tap.raises(fn, pattern, name)
	local okc, err = pcall(fn)
	if okc then
		return report(false, name, "no error raised")
	end
	err = tostring(err)
	return report(pattern == nil or err:find(pattern, 1, true) ~= nil, name, "error was: " .. err)
end

-- Prints the closing line and exits non-zero when anything failed, so a crash-free run still fails CI.
function tap.done()
	print(string.format("%d passed, %d failed", tap.passed, tap.failed))
	os.exit(tap.failed == 0 and 0 or 1)
end

return tap
