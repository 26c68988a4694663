#!/usr/bin/env bash
# Runs every test suite (C binaries, Lua, end-to-end shell) and prints one closing line for CI.
# Each suite prints its own "N passed, N failed[, N skipped]" last; a suite that dies without one counts
# as one failure. Usage: tests/run.sh [PATTERN]   (PATTERN filters suite paths, e.g. "bpf" or "e2e")
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
pattern=${1:-}
logdir=$BUILD/test-logs
mkdir -p "$logdir"
total_p=0 total_f=0 total_s=0 failed_suites=()

run_suite() {   # name, command...
	local name=$1; shift
	[ -n "$pattern" ] && [[ "$name" != *$pattern* ]] && return 0
	local log="$logdir/$(echo "$name" | tr '/' '_').log"
	printf '=== %s\n' "$name"
	local start=$SECONDS
	timeout --kill-after=10 "${HYP_SUITE_TIMEOUT:-600}" "$@" >"$log" 2>&1
	local rc=$?
	local line
	line=$(grep -E '^([A-Za-z]+: )?[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$log" | tail -n 1)
	local p=0 f=0 s=0
	if [ -n "$line" ]; then
		p=$(sed -E 's/.*\b([0-9]+) passed.*/\1/' <<<"$line")
		f=$(sed -E 's/.*\b([0-9]+) failed.*/\1/' <<<"$line")
		[[ "$line" == *skipped* ]] && s=$(sed -E 's/.*\b([0-9]+) skipped.*/\1/' <<<"$line")
	fi
	if [ -z "$line" ] || { [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; }; then
		f=$((f + 1))
		echo "    suite exited $rc without a clean closing line"
	fi
	grep -E '^not ok|# SKIP|^#' "$log" | head -n 40 | sed 's/^/    /'
	printf '    %d passed, %d failed, %d skipped (%ds)\n' "$p" "$f" "$s" $((SECONDS - start))
	total_p=$((total_p + p)); total_f=$((total_f + f)); total_s=$((total_s + s))
	[ "$f" -gt 0 ] && failed_suites+=("$name (log: $log)")
	return 0
}

for t in "$BUILD"/tests/bpf/test_* "$BUILD"/tests/runtime/test_*; do
	[ -x "$t" ] || continue
	run_suite "${t#"$BUILD"/tests/}" "$t"
done
for t in tests/lua/test_*.lua; do
	[ -f "$t" ] || continue
	run_suite "lua/$(basename "$t")" env LUA_PATH="lib/?.lua;lib/?/init.lua;tests/lua/?.lua;;" luajit "$t"
done
for t in tests/e2e/test_*.sh; do
	[ -f "$t" ] || continue
	run_suite "e2e/$(basename "$t")" bash "$t"
done

if ((${#failed_suites[@]})); then
	echo "failed suites:"
	printf '  %s\n' "${failed_suites[@]}"
fi
if [ "$total_s" -gt 0 ]; then
	echo "$total_p passed, $total_f failed, $total_s skipped"
else
	echo "$total_p passed, $total_f failed"
fi
[ "$total_f" -eq 0 ]
