#!/usr/bin/env bash
# Benchmark harness smoke test: bench/run.sh --smoke sends a few thousand paced frames per scenario and
# system; every frame the generator sent must be in the receiver's books (its XDP counter, Hyperion's
# stats), and every frame of a "drop" scenario in the drop counters (rule counters, reasons). Counts only.
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
HANDSHAKE_SLACK=16   # a real connection's own frames: scenario c runs on one (SYN, ACK, RST, the socket's
                     # segments); Hyperion in d/f6d holds one idle through the flood (IPv6 neighbour
                     # reachability probes, a keepalive may fall inside the counting window)
pass=0 fail=0 skip=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
notok() { fail=$((fail + 1)); echo "not ok - $*"; }

if [ "$(id -u)" != 0 ]; then
	echo "# SKIP needs root (network namespaces, XDP)"
	echo "0 passed, 0 failed, 1 skipped"; exit 0
fi
if [ ! -x "$BUILD/bench/trafficgen" ] || [ ! -x "$BUILD/bench/xdprx" ]; then
	make --no-print-directory bench-tools >/dev/null 2>&1 || {
		echo "# SKIP bench tools do not build (make bench-tools)"
		echo "0 passed, 0 failed, 1 skipped"; exit 0; }
fi
for t in ipset conntrack nft ncat; do
	command -v "$t" >/dev/null || { echo "# SKIP missing $t (make bench-deps)"; echo "0 passed, 0 failed, 1 skipped"; exit 0; }
done

out=$(SMOKE_COUNT=${SMOKE_COUNT:-3000} timeout --kill-after=10 600 bench/run.sh --smoke 2>&1)
rc=$?
[ "$rc" -eq 0 ] && ok "bench/run.sh --smoke exits 0" || notok "bench/run.sh --smoke exits 0 (rc $rc)"
grep -E '^# SKIP' <<<"$out" && skip=$((skip + $(grep -c '^# SKIP' <<<"$out")))
grep -E '^# hyperion books' <<<"$out"
grep -E '^\[ *[0-9]+s\] bench: .*(failed|skipped)' <<<"$out" | sed 's/^/# /'
n=0
while read -r _ scen sys expect sent seen dropped; do
	n=$((n + 1))
	expect=${expect#expect=} sent=${sent#sent=} seen=${seen#seen=} dropped=${dropped#dropped=}
	if [ "$sent" -le 0 ]; then notok "$scen/$sys: generator sent nothing"; continue; fi
	if [ "$scen" = c ] || { [ "$sys" = hyperion ] && { [ "$scen" = d ] || [ "$scen" = f6d ]; }; }; then
		[ "$seen" -ge "$sent" ] && [ "$seen" -le $((sent + HANDSHAKE_SLACK)) ] &&
			ok "$scen/$sys: receiver saw the $sent frames sent (+$((seen - sent)) of the real connection)" ||
			notok "$scen/$sys: receiver saw $seen of $sent frames sent"
	else
		[ "$seen" -eq "$sent" ] && ok "$scen/$sys: receiver saw exactly the $sent frames sent" ||
			notok "$scen/$sys: receiver saw $seen of $sent frames sent"
	fi
	case $expect:$sys in
	*:xdp_drop) ;;   # drops everything by construction: seen == dropped says nothing
	*:xdp_pass) ;;
	drop:*)
		[ "$dropped" -eq "$sent" ] && ok "$scen/$sys: all $sent dropped by the policy" ||
			notok "$scen/$sys: $dropped of $sent dropped" ;;
	pass:*)
		[ "$dropped" -le $([ "$scen" = c ] && echo "$HANDSHAKE_SLACK" || echo 0) ] &&
			ok "$scen/$sys: passed ($dropped dropped)" || notok "$scen/$sys: $dropped of $sent dropped" ;;
	esac
done < <(grep '^smoke ' <<<"$out")
[ "$n" -gt 0 ] && ok "smoke produced $n books lines" || { notok "smoke produced no books lines"; echo "$out" | tail -n 20 | sed 's/^/# /'; }
# A system that fails to start leaves no books line, which the loop above cannot miss: every start counts.
nfail=$(grep -cE '^\[ *[0-9]+s\] bench: .*: setup failed' <<<"$out")
[ "$nfail" -eq 0 ] && ok "every system started" || notok "$nfail system(s) failed to start"
# The references the ratios are taken against ran (the ban floor: scenario b only).
for want in "a xdp_drop" "b xdp_drop" "b xdp_ban" "d xdp_tx"; do
	grep -q "^smoke $want " <<<"$out" && ok "$want ran" || notok "$want did not run"
done
if [ "$skip" -gt 0 ]; then
	echo "$pass passed, $fail failed, $skip skipped"
else
	echo "$pass passed, $fail failed"
fi
[ "$fail" -eq 0 ]
