# Lab of network namespaces shared by `make demo` and the end-to-end tests (source it, don't run it).
#
#   server    192.0.2.1    2001:db8::1     runs hyperiond on its interface "hyp0" (XDP + tc egress)
#   client    192.0.2.10   2001:db8::10    legitimate user
#   attacker  192.0.2.66   2001:db8::66    (and 192.0.2.67-70 as extra sources)
#   outside   198.51.100.1 2001:db8:1::1   a host "on the internet" the server itself talks to
#
# All hang off a bridge in a fourth namespace ("lan"), so the server sees every peer on one interface.
# Names carry LAB_ID (default: pid) so that parallel runs never collide; lab_down removes everything.

LAB_ID=${LAB_ID:-$$}
LAB_NS_LAN=hyp-lan-$LAB_ID
LAB_NS_SERVER=hyp-srv-$LAB_ID
LAB_NS_CLIENT=hyp-cli-$LAB_ID
LAB_NS_ATTACKER=hyp-att-$LAB_ID
LAB_NS_OUTSIDE=hyp-out-$LAB_ID
LAB_IF=hyp0
LAB_SERVER4=192.0.2.1
LAB_SERVER6=2001:db8::1
LAB_CLIENT4=192.0.2.10
LAB_CLIENT6=2001:db8::10
LAB_ATTACKER4=192.0.2.66
LAB_ATTACKER6=2001:db8::66
LAB_OUTSIDE4=198.51.100.1
LAB_OUTSIDE6=2001:db8:1::1
LAB_DIR=${LAB_DIR:-/tmp/hyp-lab-$LAB_ID}
LAB_PIN_DIR=/sys/fs/bpf/hyp-lab-$LAB_ID
LAB_SOCK=$LAB_DIR/hyperiond.sock
LAB_ROOT=${LAB_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
HYPERIOND=${HYPERIOND:-$LAB_ROOT/build/hyperiond}
HYPERIONCTL=${HYPERIONCTL:-$LAB_ROOT/build/hyperionctl}
LAB_DAEMON_PID=

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
srv() { in_ns "$LAB_NS_SERVER" "$@"; }
cli() { in_ns "$LAB_NS_CLIENT" "$@"; }
att() { in_ns "$LAB_NS_ATTACKER" "$@"; }
out() { in_ns "$LAB_NS_OUTSIDE" "$@"; }
ctl() { "$HYPERIONCTL" -s "$LAB_SOCK" "$@"; }

# One peer namespace: veth pair, one end in the peer as IFNAME, the other enslaved to the bridge.
lab_peer() {   # ns ifname addr4 addr6 [extra addr4...]
	local ns=$1 ifn=$2 a4=$3 a6=$4; shift 4
	local br_end=b${ns: -8}
	ip netns add "$ns"
	ip link add "$ifn" netns "$ns" type veth peer name "$br_end" netns "$LAB_NS_LAN"
	in_ns "$LAB_NS_LAN" ip link set "$br_end" master br0 up
	in_ns "$ns" ip link set lo up
	in_ns "$ns" ip link set "$ifn" up
	in_ns "$ns" ip addr add "$a4/24" dev "$ifn"
	in_ns "$ns" ip -6 addr add "$a6/64" dev "$ifn" nodad
	local extra
	for extra in "$@"; do in_ns "$ns" ip addr add "$extra/24" dev "$ifn"; done
}

lab_up() {
	mkdir -p "$LAB_DIR"
	mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
	ip netns add "$LAB_NS_LAN"
	in_ns "$LAB_NS_LAN" ip link add br0 type bridge
	in_ns "$LAB_NS_LAN" ip link set br0 up
	in_ns "$LAB_NS_LAN" ip link set lo up
	lab_peer "$LAB_NS_SERVER" "$LAB_IF" "$LAB_SERVER4" "$LAB_SERVER6"
	lab_peer "$LAB_NS_CLIENT" eth0 "$LAB_CLIENT4" "$LAB_CLIENT6"
	lab_peer "$LAB_NS_ATTACKER" eth0 "$LAB_ATTACKER4" "$LAB_ATTACKER6" 192.0.2.67 192.0.2.68 192.0.2.69 192.0.2.70
	# "outside" lives in another subnet reached through the server's second address: simplest is to
	# put it on the same bridge with a route, so the server's own outbound traffic crosses hyp0.
	lab_peer "$LAB_NS_OUTSIDE" eth0 "$LAB_OUTSIDE4" "$LAB_OUTSIDE6"
	srv ip route add 198.51.100.0/24 dev "$LAB_IF"
	srv ip -6 route add 2001:db8:1::/64 dev "$LAB_IF"
	out ip route add 192.0.2.0/24 dev eth0
	out ip -6 route add 2001:db8::/64 dev eth0
	# the server and the outside host answer ARP/ND for each other's subnet directly on the link
	srv sysctl -qw net.ipv4.conf.all.arp_ignore=0
	out sysctl -qw net.ipv4.conf.all.arp_ignore=0
}

lab_down() {
	lab_stop_daemon
	local ns
	for ns in "$LAB_NS_SERVER" "$LAB_NS_CLIENT" "$LAB_NS_ATTACKER" "$LAB_NS_OUTSIDE" "$LAB_NS_LAN"; do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$LAB_PIN_DIR" 2>/dev/null
	[ -n "${LAB_KEEP_DIR:-}" ] || rm -rf "$LAB_DIR"
}

# Start hyperiond in the server namespace with POLICY; waits (bounded) until its socket answers.
lab_start_daemon() {   # policy [extra hyperiond args...]
	local policy=$1; shift
	srv "$HYPERIOND" -i "$LAB_IF" -p "$policy" --socket "$LAB_SOCK" --pin-dir "$LAB_PIN_DIR" \
		--state-dir "$LAB_DIR/state" "$@" >>"$LAB_DIR/hyperiond.log" 2>&1 &
	LAB_DAEMON_PID=$!
	local i
	for i in $(seq 1 100); do
		ctl status >/dev/null 2>&1 && return 0
		kill -0 "$LAB_DAEMON_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "hyperiond did not come up; its log:" >&2
	tail -n 20 "$LAB_DIR/hyperiond.log" >&2
	return 1
}

lab_stop_daemon() {
	[ -n "$LAB_DAEMON_PID" ] || return 0
	kill -TERM "$LAB_DAEMON_PID" 2>/dev/null
	local i
	for i in $(seq 1 50); do kill -0 "$LAB_DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$LAB_DAEMON_PID" 2>/dev/null
	wait "$LAB_DAEMON_PID" 2>/dev/null
	LAB_DAEMON_PID=
}

# A small HTTP server in the server namespace on port 80 (v4 and v6), serving LAB_DIR/www.
lab_start_http() {
	mkdir -p "$LAB_DIR/www"
	echo "hello from hyperion lab" >"$LAB_DIR/www/index.html"
	srv python3 -m http.server 80 --bind :: --directory "$LAB_DIR/www" >"$LAB_DIR/http.log" 2>&1 &
	local i
	for i in $(seq 1 50); do
		cli curl -s -o /dev/null --max-time 1 "http://$LAB_SERVER4/" && return 0
		sleep 0.1
	done
	echo "http server did not come up" >&2
	return 1
}
