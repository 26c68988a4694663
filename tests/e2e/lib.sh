# TAP helpers, prerequisites and teardown shared by the namespace-lab end-to-end tests (source it after
# scripts/lab.sh). Each test prints "N passed, N failed[, N skipped]" last through finish.
# shellcheck shell=bash

pass=0 fail=0 skip=0
BG_PIDS=()    # background sessions: they end on "$LAB_DIR/stop" and are killed at cleanup
SRV_PIDS=()   # servers a test starts itself: killed at cleanup

ok() { pass=$((pass + 1)); echo "ok - $*"; }
notok() { fail=$((fail + 1)); echo "not ok - $*"; }
skip() { skip=$((skip + 1)); echo "# SKIP $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else notok "$what"; fi; }
refused() { local what=$1; shift; if "$@"; then notok "$what"; else ok "$what"; fi; }
note() { echo "# $*"; }
finish() {
	if [ "$skip" -gt 0 ]; then echo "$pass passed, $fail failed, $skip skipped"; else echo "$pass passed, $fail failed"; fi
	[ "$fail" -eq 0 ]
	exit
}

# Skips the whole test (and exits) unless it runs as root with every tool named and both binaries built.
e2e_require() {   # tool...
	local t
	if [ "$(id -u)" != 0 ]; then skip "needs root (network namespaces, XDP)"; finish; fi
	for t in "$@"; do
		command -v "$t" >/dev/null || { skip "missing $t (make deps)"; finish; }
	done
	[ -x "$HYPERIOND" ] && [ -x "$HYPERIONCTL" ] || { skip "build/hyperiond or build/hyperionctl not built"; finish; }
}

# Ends the sessions and servers, shows the daemon's log tail when something failed, removes the lab.
e2e_cleanup() {   # log-lines
	local p
	touch "$LAB_DIR/stop" 2>/dev/null
	for p in "${BG_PIDS[@]}" "${SRV_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	if [ "$fail" -gt 0 ] && [ -f "$LAB_DIR/hyperiond.log" ]; then
		echo "# hyperiond log (last $1 lines):"; tail -n "$1" "$LAB_DIR/hyperiond.log" | sed 's/^/#   /'
	fi
	lab_down
}

# Cleanup on exit, and an interrupt still runs it.
e2e_traps() {   # log-lines
	trap "e2e_cleanup $1" EXIT
	trap 'exit 130' INT TERM
}
