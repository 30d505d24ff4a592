#!/usr/bin/env bash
# lab.sh - multipath labs of real Linux routers in network namespaces.
#
#   lab.sh list                      topologies, one line each
#   lab.sh describe [-6] TOPOLOGY    expected distinct paths: one line per path,
#                                    the hop addresses from TTL 1 to the
#                                    destination (stdout); hop names on stderr;
#                                    -6: the IPv6 addresses
#   lab.sh up TOPOLOGY PREFIX        build PREFIX-prober, PREFIX-r1, ..., PREFIX-dst
#   lab.sh sink PREFIX [CIDR]        build PREFIX-prober and PREFIX-sink: CIDR
#                                    (default 10.96.0.0/12) is routed from the
#                                    prober over a veth whose peer drops every
#                                    packet; for measuring raw send rates
#   lab.sh down PREFIX               remove every namespace named PREFIX-*
#
# up and sink claim PREFIX by creating PREFIX-prober first, which fails if
# the name exists: of two runs given one prefix, one builds its lab and the
# other exits with status 17, having built and removed nothing.
#
# Every topology: the prober is 10.0.0.2 on its link to r1 (10.0.0.1); the
# destination namespace holds 10.99.0.1 and every router routes 10.99.0.0/20
# towards it. With LAB_LOCAL_PREFIX=CIDR set for `up`, the destination also
# answers every address of CIDR (`ip route add local CIDR dev lo`) and the
# prober and every router route CIDR towards it as well. CIDR may be IPv6:
# the destination then answers for its addresses from fd00:98::2 (a Linux
# host answers ICMPv6 errors about an address it has only through a local
# route from the interface the probe came in by).
#
# Every lab is dual-stack: each link 10.S.B.0/24 also has the IPv6 /64
# fd00:S:B::/64, with the same host numbers (10.S.B.1 is fd00:S:B::1; the
# prober is fd00::2, r1 fd00::1), the destination also holds fd00:99::1 and
# every router routes fd00:99::/64 towards it. DAD is off (addresses are
# usable at once) and nobody sends router solicitations.
#
# Routers: ip_forward=1, rp_filter=0, icmp_ratelimit=0, ip_early_demux=0, fib_multipath_hash_policy=1
# (L4 hash), a distinct fib_multipath_hash_seed each, and
# icmp_errors_use_inbound_ifaddr=1: a router answers TTL-exceeded from the
# address of the interface the probe came in by, which is what `describe`
# prints. Link addressing: the link from an upstream node X to a downstream
# node Y is 10.S.B.0/24 with X on .1 and Y on .2, so the hop address of Y is
# always 10.S.B.2 (S = stage, B = branch); r1 answers with 10.0.0.1.
# IPv6 alike: forwarding=1, icmp/ratelimit=0, net.ipv6.fib_multipath_hash_policy=1;
# net.ipv4.fib_multipath_hash_seed seeds the IPv6 multipath hash too (equal
# seeds polarize `nested` over IPv6 as over IPv4). Linux has no setting for
# the source of ICMPv6 errors: when the return route has no preferred source
# it picks an address of the interface the probe came in by, so hop Y answers
# fd00:S:B::2 as it answers 10.S.B.2 over IPv4, and `describe -6` prints the
# same paths in IPv6. The prober has net.ipv6.auto_flowlabels=0: computing
# a flow label for a packet of a kernel IPv6 socket leaves an L4 hash on it,
# which veth keeps and every router of the lab would then use instead of
# hashing the packet itself, so nested balancers would polarize for tools
# that send through kernel sockets (scamper, the lab's own tests).
# ICMP echo requests are balanced per identifier by nftables at load
# balancers, as routers hashing the ICMP header do: Linux's multipath hash
# reads no ICMP echo identifier, so every echo request between two addresses
# would take one path. At every router with more than one next hop towards
# the destination prefixes, a prerouting chain marks IPv4 and IPv6 echo
# requests with jhash(source, destination, echo identifier) mod N + 1, seeded
# with the router's fib_multipath_hash_seed (nested balancers stay
# independent), and `ip rule fwmark K table 100+K` (IPv4 and IPv6) routes
# them by a table holding the destination prefixes via the K-th next hop
# only: `describe` holds for echo requests too. Nothing else is marked: UDP
# and TCP keep the kernel's multipath hash, and the routers' own ICMP errors
# and the echo replies (routed towards the prober) are untouched.
# Veth pairs are created directly inside the namespaces (ip -n NS link add ...
# peer ... netns NS2), so parallel labs never clash in the root namespace.
set -euo pipefail

readonly DST_ADDR=10.99.0.1
readonly DST_PREFIX=10.99.0.0/20
readonly PROBER_NET=10.0.0.0/24
readonly DST_ADDR6=fd00:99::1
readonly DST_PREFIX6=fd00:99::/64
readonly PROBER_NET6=fd00::/64
readonly PROBE_PORT=33434

readonly TOPOLOGIES=(line diamond4 unequal nested diamond8)

die() {
	echo "lab.sh: $*" >&2
	exit 1
}

usage() {
	cat >&2 <<'EOF'
usage: lab.sh list
       lab.sh describe [-6] TOPOLOGY
       [LAB_LOCAL_PREFIX=CIDR] lab.sh up TOPOLOGY PREFIX
       lab.sh sink PREFIX [CIDR]
       lab.sh down PREFIX
EOF
	exit 2
}

topology_summary() {
	case $1 in
	line) echo "prober - r1 - r2 - dst: one path, destination at TTL 3" ;;
	diamond4) echo "prober - r1 - {a1..a4} (4-way ECMP at r1) - r3 - dst: 4 paths, destination at TTL 4" ;;
	unequal) echo "prober - r1 - {s1 | l1 - l2} (2-way ECMP at r1) - r3 - dst: 2 paths of length 4 and 5" ;;
	nested) echo "prober - r1 - {b1,b2}; b1 - {c1,c2}, b2 - {c3,c4} (nested 2-way ECMP) - r3 - dst: 4 paths, destination at TTL 5" ;;
	diamond8) echo "prober - r1 - {a1..a8} (8-way ECMP at r1) - r3 - dst: 8 paths, destination at TTL 4" ;;
	*) return 1 ;;
	esac
}

# ---------------------------------------------------------------------------
# Topology model: directed links from upstream (towards the prober) to
# downstream (towards the destination), each with both end addresses (/24).

NODES=()
LK_UP=()
LK_DOWN=()
LK_UPA=()
LK_DOWNA=()
LK_UPA6=()
LK_DOWNA6=()

add_node() {
	local n
	for n in "$@"; do
		[[ " ${NODES[*]} " == *" $n "* ]] || NODES+=("$n")
	done
}

# v6of 10.A.B.C: the IPv6 twin fd00:A:B::C of a lab address, written as
# addresses are printed (RFC 5952: the longest run of zero groups as ::).
v6of() {
	local a b c
	IFS=. read -r _ a b c <<<"$1"
	if [[ $b == 0 && $a == 0 ]]; then
		echo "fd00::$c"
	elif [[ $b == 0 ]]; then
		echo "fd00:$a::$c"
	else
		echo "fd00:$a:$b::$c"
	fi
}

# link_addr UP DOWN UP_ADDR DOWN_ADDR
link_addr() {
	LK_UP+=("$1")
	LK_DOWN+=("$2")
	LK_UPA+=("$3")
	LK_DOWNA+=("$4")
	LK_UPA6+=("$(v6of "$3")")
	LK_DOWNA6+=("$(v6of "$4")")
	add_node "$1" "$2"
}

# link UP DOWN NET: NET is three octets; UP gets NET.1, DOWN gets NET.2.
link() {
	link_addr "$1" "$2" "$3.1" "$3.2"
}

topo_line() {
	link_addr prober r1 10.0.0.2 10.0.0.1
	link r1 r2 10.1.1
	link r2 dst 10.98.0
}

# topo_diamond N: r1 load-balances over a1..aN, which all lead to r3.
topo_diamond() {
	local n=$1 k
	link_addr prober r1 10.0.0.2 10.0.0.1
	for ((k = 1; k <= n; k++)); do link r1 "a$k" "10.1.$k"; done
	for ((k = 1; k <= n; k++)); do link "a$k" r3 "10.2.$k"; done
	link r3 dst 10.98.0
}

topo_unequal() {
	link_addr prober r1 10.0.0.2 10.0.0.1
	link r1 s1 10.1.1
	link r1 l1 10.1.2
	link s1 r3 10.2.1
	link l1 l2 10.2.2
	link l2 r3 10.3.2
	link r3 dst 10.98.0
}

topo_nested() {
	local k
	link_addr prober r1 10.0.0.2 10.0.0.1
	link r1 b1 10.1.1
	link r1 b2 10.1.2
	link b1 c1 10.2.1
	link b1 c2 10.2.2
	link b2 c3 10.2.3
	link b2 c4 10.2.4
	for ((k = 1; k <= 4; k++)); do link "c$k" r3 "10.3.$k"; done
	link r3 dst 10.98.0
}

load_topology() {
	case $1 in
	line) topo_line ;;
	diamond4) topo_diamond 4 ;;
	diamond8) topo_diamond 8 ;;
	unequal) topo_unequal ;;
	nested) topo_nested ;;
	*) die "unknown topology '$1' (lab.sh list shows them)" ;;
	esac
}

# walk NODE ADDRS NAMES: prints "ADDRS|NAMES" for every path from NODE to dst.
walk() {
	local node=$1 addrs=$2 names=$3 i
	for i in "${!LK_UP[@]}"; do
		[[ ${LK_UP[i]} == "$node" ]] || continue
		if [[ ${LK_DOWN[i]} == dst ]]; then
			echo "$addrs $DST_ADDR|$names dst"
		else
			walk "${LK_DOWN[i]}" "$addrs ${LK_DOWNA[i]}" "$names ${LK_DOWN[i]}"
		fi
	done
}

# walk6 NODE ADDRS NAMES: walk, with the IPv6 addresses.
walk6() {
	local node=$1 addrs=$2 names=$3 i
	for i in "${!LK_UP[@]}"; do
		[[ ${LK_UP[i]} == "$node" ]] || continue
		if [[ ${LK_DOWN[i]} == dst ]]; then
			echo "$addrs $DST_ADDR6|$names dst"
		else
			walk6 "${LK_DOWN[i]}" "$addrs ${LK_DOWNA6[i]}" "$names ${LK_DOWN[i]}"
		fi
	done
}

cmd_list() {
	local t
	for t in "${TOPOLOGIES[@]}"; do
		printf '%-9s %s\n' "$t" "$(topology_summary "$t")"
	done
}

cmd_describe() {
	local six=0
	if [[ ${1:-} == -6 ]]; then
		six=1
		shift
	fi
	[[ $# -eq 1 ]] || usage
	load_topology "$1"
	local line
	echo "# $1: $(topology_summary "$1")" >&2
	while IFS= read -r line; do
		echo "${line%%|*}"
		echo "#   ${line#*|}" >&2
	done < <(if ((six)); then walk6 r1 "${LK_DOWNA6[0]}" r1; else walk r1 "${LK_DOWNA[0]}" r1; fi)
}

# ---------------------------------------------------------------------------
# up / down

require_root() {
	[[ $EUID -eq 0 ]] || die "$1 needs root (network namespaces, veth, sysctl)"
	command -v ip >/dev/null || die "ip (iproute2) not found"
}

check_prefix() {
	[[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9_.]{0,30}$ ]] ||
		die "bad prefix '$1' (letters, digits, '_' and '.', at most 31 characters)"
}

# claim PREFIX: creates PREFIX-prober, the lab's first namespace, or exits
# 17 (EEXIST) if namespaces PREFIX-* exist. `ip netns add` fails when the
# name exists, so two runs cannot both claim one prefix; the loser must not
# remove anything, so callers set their cleanup trap only after claim.
claim() {
	local err
	if [[ -z $(namespaces "$1") ]] && err=$(ip netns add "$1-prober" 2>&1); then
		return 0
	fi
	if [[ -n $(namespaces "$1") ]]; then
		echo "lab.sh: namespaces $1-* exist already (lab.sh down $1)" >&2
		exit 17
	fi
	die "ip netns add $1-prober: $err"
}

# namespaces PREFIX: prints the namespaces named PREFIX-*.
namespaces() {
	ip netns list | awk -v p="$1-" 'index($1, p) == 1 { print $1 }'
}

cmd_down() {
	[[ $# -eq 1 ]] || usage
	check_prefix "$1"
	local ns list
	list=$(namespaces "$1")
	[[ -n $list ]] || return 0
	require_root down
	local failed=0
	while IFS= read -r ns; do
		# A concurrent down may have removed it already: that is fine.
		ip netns del "$ns" 2>/dev/null || [[ ! -e /run/netns/$ns ]] || {
			echo "lab.sh: could not delete namespace $ns" >&2
			failed=1
		}
	done <<<"$list"
	return "$failed"
}

# sysctl_script ROLE SEED: a sh script that configures one namespace.
sysctl_script() {
	local role=$1 seed=$2
	# set: must exist; opt: only where this kernel has it.
	cat <<'EOF'
set -e
set_() { echo "$2" >"/proc/sys/$1"; }
opt() { if [ -e "/proc/sys/$1" ]; then echo "$2" >"/proc/sys/$1"; fi; }
# IPv6 on, without DAD (addresses usable at once), router solicitations
# or autoconfiguration; set before the veths exist, so they inherit it.
for c in all default; do
	set_ net/ipv6/conf/$c/disable_ipv6 0
	set_ net/ipv6/conf/$c/accept_dad 0
	set_ net/ipv6/conf/$c/accept_ra 0
	set_ net/ipv6/conf/$c/autoconf 0
	set_ net/ipv6/conf/$c/router_solicitations 0
done
set_ net/ipv6/icmp/ratelimit 0
set_ net/ipv6/icmp/echo_ignore_all 0
set_ net/ipv4/conf/all/rp_filter 0
set_ net/ipv4/conf/default/rp_filter 0
set_ net/ipv4/conf/lo/rp_filter 0
set_ net/ipv4/icmp_ratelimit 0
set_ net/ipv4/icmp_echo_ignore_all 0
opt net/ipv4/icmp_msgs_per_sec 1000000
opt net/ipv4/icmp_msgs_burst 1000000
EOF
	if [[ $role == prober ]]; then
		echo "set_ net/ipv6/auto_flowlabels 0"
	fi
	if [[ $role == router ]]; then
		cat <<EOF
set_ net/ipv4/ip_forward 1
# Early demux looks up a local socket for every packet received, forwarded
# ones too: the kernel's documentation advises routers to turn it off.
opt net/ipv4/ip_early_demux 0
set_ net/ipv4/icmp_errors_use_inbound_ifaddr 1
set_ net/ipv4/fib_multipath_hash_policy 1
set_ net/ipv6/conf/all/forwarding 1
set_ net/ipv6/fib_multipath_hash_policy 1
if [ -e /proc/sys/net/ipv4/fib_multipath_hash_seed ]; then
	set_ net/ipv4/fib_multipath_hash_seed $seed
else
	echo "lab.sh: warning: no net.ipv4.fib_multipath_hash_seed (kernel < 6.11): nested ECMP may polarize" >&2
fi
EOF
	fi
}

# route_cmd PREFIX NEXTHOP...: an `ip route add` line for ip -batch.
route_cmd() {
	local pfx=$1 nh
	shift
	if [[ $# -eq 1 ]]; then
		echo "route add $pfx via $1"
		return
	fi
	local line="route add $pfx"
	for nh in "$@"; do line+=" nexthop via $nh"; done
	echo "$line"
}

# next_hops NODE: NH and NH6 are set to the addresses of NODE's downstream
# neighbours (its next hops towards the destination), in link order.
next_hops() {
	local i
	NH=()
	NH6=()
	for i in "${!LK_UP[@]}"; do
		[[ ${LK_UP[i]} == "$1" ]] || continue
		NH+=("${LK_DOWNA[i]}")
		NH6+=("${LK_DOWNA6[i]}")
	done
}

# icmp_nft N SEED: the nftables ruleset of a load balancer with N next hops:
# echo requests get the mark K (1..N) of the next hop their flow (addresses
# and identifier) hashes to.
icmp_nft() {
	local n=$1 seed=$2
	cat <<EOF
table inet lab_icmp {
	chain prerouting {
		type filter hook prerouting priority mangle; policy accept;
		icmp type echo-request meta mark set jhash ip saddr . ip daddr . icmp id mod $n seed $seed offset 1
		icmpv6 type echo-request meta mark set jhash ip6 saddr . ip6 daddr . icmpv6 id mod $n seed $seed offset 1
	}
}
EOF
}

# icmp_batch 4|6 PREFIXES...: the ip -batch commands (for ip -4 or ip -6:
# a batch line cannot choose the family of a rule) that route the echo
# requests marked K by a load balancer whose next hops are NH/NH6 to the
# K-th next hop only. PREFIXES of the other family are skipped.
icmp_batch() {
	local fam=$1 k pfx
	shift
	for ((k = 1; k <= ${#NH[@]}; k++)); do
		echo "rule add fwmark $k table $((100 + k))"
		for pfx in "$@"; do
			if [[ $fam == 6 && $pfx == *:* ]]; then
				echo "route add $pfx via ${NH6[k - 1]} table $((100 + k))"
			elif [[ $fam == 4 && $pfx != *:* ]]; then
				echo "route add $pfx via ${NH[k - 1]} table $((100 + k))"
			fi
		done
	done
}

# node_batch NODE PREFIXES...: the ip -batch commands that set up NODE's
# interfaces, addresses and routes. PREFIXES are routed towards the dst.
node_batch() {
	local node=$1 i pfx
	shift
	local fwd=() back=() fwd6=() back6=()
	echo "link set lo up"
	for i in "${!LK_UP[@]}"; do
		if [[ ${LK_UP[i]} == "$node" ]]; then
			echo "address add ${LK_UPA[i]}/24 dev to-${LK_DOWN[i]}"
			echo "address add ${LK_UPA6[i]}/64 dev to-${LK_DOWN[i]} nodad"
			echo "link set to-${LK_DOWN[i]} up"
			fwd+=("${LK_DOWNA[i]}")
			fwd6+=("${LK_DOWNA6[i]}")
		elif [[ ${LK_DOWN[i]} == "$node" ]]; then
			echo "address add ${LK_DOWNA[i]}/24 dev to-${LK_UP[i]}"
			echo "address add ${LK_DOWNA6[i]}/64 dev to-${LK_UP[i]} nodad"
			echo "link set to-${LK_UP[i]} up"
			[[ ${LK_UP[i]} == prober ]] || back+=("${LK_UPA[i]}")
			[[ ${LK_UP[i]} == prober ]] || back6+=("${LK_UPA6[i]}")
		fi
	done
	case $node in
	prober)
		echo "route add 10.0.0.0/8 via ${fwd[0]}"
		echo "route add fd00::/16 via ${fwd6[0]}"
		for pfx in "$@"; do
			if [[ $pfx == *:* ]]; then
				route_cmd "$pfx" "${fwd6[@]}"
			elif [[ $pfx != "$DST_PREFIX" ]]; then
				route_cmd "$pfx" "${fwd[@]}"
			fi
		done
		;;
	dst)
		echo "address add $DST_ADDR/32 dev lo"
		echo "address add $DST_ADDR6/128 dev lo nodad"
		[[ -z ${LAB_LOCAL_PREFIX:-} ]] || echo "route add local $LAB_LOCAL_PREFIX dev lo"
		# Replies to the prober (and to any 10/8 or fd00::/16 source) go
		# back up.
		echo "route add 10.0.0.0/8 via ${back[0]}"
		echo "route add fd00::/16 via ${back6[0]}"
		;;
	*)
		for pfx in "$@"; do
			if [[ $pfx == *:* ]]; then
				route_cmd "$pfx" "${fwd6[@]}"
			else
				route_cmd "$pfx" "${fwd[@]}"
			fi
		done
		route_cmd "$DST_PREFIX6" "${fwd6[@]}"
		# Back to the prober through the first upstream neighbour (r1 is on
		# the prober's subnet already). Any upstream would do: rp_filter=0.
		[[ ${#back[@]} -eq 0 ]] || echo "route add $PROBER_NET via ${back[0]}"
		[[ ${#back6[@]} -eq 0 ]] || echo "route add $PROBER_NET6 via ${back6[0]}"
		;;
	esac
}

# wait_links_up PREFIX: until every interface of the lab is operationally up.
wait_links_up() {
	local prefix=$1 node down i
	for ((i = 0; i < 100; i++)); do
		down=""
		for node in "${NODES[@]}"; do
			down+=$(ip -n "$prefix-$node" -br link | awk -v ns="$prefix-$node" '$2 != "UP" && $2 != "UNKNOWN" { printf " %s:%s(%s)", ns, $1, $2 }')
		done
		[[ -n $down ]] || return 0
		sleep 0.02
	done
	die "links still not up after 2 s:$down"
}

# reach PROBER_NS: true once the prober got an answer from the destination,
# over IPv4 and over IPv6.
reach() {
	local ns=$1
	if command -v ping >/dev/null; then
		ip netns exec "$ns" ping -n -q -c1 -W1 "$DST_ADDR" >/dev/null 2>&1 &&
			ip netns exec "$ns" ping -6 -n -q -c1 -W1 "$DST_ADDR6" >/dev/null 2>&1
		return
	fi
	# No ping here: send one UDP datagram and watch the prober's count of
	# ICMP destination unreachable messages received go up.
	local before after i
	before=$(unreach_count "$ns")
	ip netns exec "$ns" bash -c "echo lab >/dev/udp/$DST_ADDR/$PROBE_PORT" 2>/dev/null || return 1
	for ((i = 0; i < 20; i++)); do
		after=$(unreach_count "$ns")
		((after > before)) && return 0
		sleep 0.05
	done
	return 1
}

unreach_count() {
	# shellcheck disable=SC2016 # awk program, not shell
	ip netns exec "$1" awk '/^Icmp:/ {
		if (!n) { for (i = 2; i <= NF; i++) col[$i] = i; n = 1; next }
		print $col["InDestUnreachs"]; exit
	}' /proc/net/snmp
}

cmd_up() {
	[[ $# -eq 2 ]] || usage
	local topo=$1 prefix=$2
	check_prefix "$prefix"
	require_root up
	command -v nft >/dev/null || die "nft (nftables) not found: load balancers hash ICMP echo requests with it"
	load_topology "$topo"
	local prefixes=("$DST_PREFIX")
	if [[ -n ${LAB_LOCAL_PREFIX:-} ]]; then
		[[ $LAB_LOCAL_PREFIX =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$ || $LAB_LOCAL_PREFIX =~ ^[0-9a-fA-F:]*:[0-9a-fA-F:]*/[0-9]{1,3}$ ]] ||
			die "LAB_LOCAL_PREFIX='$LAB_LOCAL_PREFIX' is not an IPv4 or IPv6 CIDR"
		[[ $LAB_LOCAL_PREFIX == "$DST_PREFIX" ]] || prefixes+=("$LAB_LOCAL_PREFIX")
	fi
	claim "$prefix"

	# From here on, any failure removes what was built.
	UP_OK=0
	# shellcheck disable=SC2064 # expand prefix now
	trap "[[ \$UP_OK == 1 ]] || { echo 'lab.sh: up failed, removing $prefix-*' >&2; cmd_down '$prefix'; }" EXIT
	trap 'exit 130' INT TERM

	local node idx=0 role i seed
	local -A seeds=()
	for node in "${NODES[@]}"; do
		[[ $node == prober ]] || ip netns add "$prefix-$node"
	done
	for node in "${NODES[@]}"; do
		role=router
		[[ $node == prober || $node == dst ]] && role=$node
		[[ $role == router ]] && idx=$((idx + 1))
		# Distinct, well spread seed per router (golden-ratio multiple of its index).
		seed=$(((idx * 2654435761) % 4294967296))
		[[ $role == router ]] && seeds[$node]=$seed
		ip netns exec "$prefix-$node" sh -c "$(sysctl_script "$role" "$seed")"
	done
	# Veth pairs, born inside their namespaces. Both ends get interface
	# indexes unique in the lab: in fresh namespaces the two ends would
	# otherwise both be ifindex 2, and the kernel then treats the carrier
	# change of an end whose index equals its peer's as non-urgent (linkwatch
	# batches those once a second), so it would show DOWN for up to 1 s.
	for i in "${!LK_UP[@]}"; do
		ip -n "$prefix-${LK_UP[i]}" link add "to-${LK_DOWN[i]}" index $((100 + 2 * i)) type veth \
			peer name "to-${LK_UP[i]}" index $((101 + 2 * i)) netns "$prefix-${LK_DOWN[i]}"
	done
	for node in "${NODES[@]}"; do
		node_batch "$node" "${prefixes[@]}" | ip -n "$prefix-$node" -batch - ||
			die "configuring $prefix-$node failed"
		# Load balancers: echo requests per identifier (see the top).
		[[ -n ${seeds[$node]:-} ]] || continue
		next_hops "$node"
		((${#NH[@]} > 1)) || continue
		icmp_batch 4 "${prefixes[@]}" | ip -4 -n "$prefix-$node" -batch - ||
			die "ICMP echo routes of $prefix-$node failed"
		icmp_batch 6 "${prefixes[@]}" "$DST_PREFIX6" | ip -6 -n "$prefix-$node" -batch - ||
			die "ICMPv6 echo routes of $prefix-$node failed"
		icmp_nft "${#NH[@]}" "${seeds[$node]}" | ip netns exec "$prefix-$node" nft -f - ||
			die "nftables ICMP echo balancing of $prefix-$node failed"
	done
	wait_links_up "$prefix"

	local tries
	for ((tries = 1; tries <= 20; tries++)); do
		reach "$prefix-prober" && break
		((tries < 20)) || {
			echo "lab.sh: $prefix-prober cannot reach $DST_ADDR or $DST_ADDR6; its routes:" >&2
			ip -n "$prefix-prober" route >&2 || true
			ip -n "$prefix-prober" -6 route >&2 || true
			die "lab $prefix ($topo) is not working"
		}
		sleep 0.1
	done
	UP_OK=1
	local names
	names=$(IFS=,; echo "${NODES[*]}")
	echo "lab.sh: $topo up as $prefix-{$names}; $prefix-prober reaches $DST_ADDR and $DST_ADDR6" >&2
}

# cmd_sink PREFIX [CIDR]: the prober (10.0.0.2 on to-sink) routes CIDR to
# 10.0.0.1, the sink's end of the veth, whose link-layer address is entered
# permanently (no ARP: the sink answers nothing). An nftables netdev ingress
# chain on the sink's end drops every packet as it arrives, the cheapest
# drop there is, so the send path is all that is measured.
cmd_sink() {
	[[ $# -ge 1 && $# -le 2 ]] || usage
	local prefix=$1 cidr=${2:-10.96.0.0/12}
	check_prefix "$prefix"
	require_root sink
	[[ $cidr =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$ ]] || die "'$cidr' is not an IPv4 CIDR"
	claim "$prefix"
	UP_OK=0
	# shellcheck disable=SC2064 # expand prefix now
	trap "[[ \$UP_OK == 1 ]] || { echo 'lab.sh: sink failed, removing $prefix-*' >&2; cmd_down '$prefix'; }" EXIT
	trap 'exit 130' INT TERM
	ip netns add "$prefix-sink"
	ip -n "$prefix-prober" link add to-sink index 100 type veth peer name to-prober index 101 netns "$prefix-sink"
	ip -n "$prefix-sink" addr add 10.0.0.1/24 dev to-prober
	ip -n "$prefix-sink" link set to-prober up
	ip -n "$prefix-sink" link set lo up
	ip -n "$prefix-prober" addr add 10.0.0.2/24 dev to-sink
	ip -n "$prefix-prober" link set to-sink up
	ip -n "$prefix-prober" link set lo up
	local mac
	mac=$(ip -n "$prefix-sink" -br link show to-prober | awk '{print $3}')
	ip -n "$prefix-prober" neigh replace 10.0.0.1 lladdr "$mac" dev to-sink nud permanent
	ip -n "$prefix-prober" route add "$cidr" via 10.0.0.1 dev to-sink
	ip netns exec "$prefix-sink" nft -f - <<NFT
table netdev sink {
	chain in {
		type filter hook ingress device "to-prober" priority 0; policy drop;
	}
}
NFT
	wait_links_up "$prefix"
	UP_OK=1
	echo "lab.sh: sink up as $prefix-{prober,sink}; $prefix-prober routes $cidr into a drop (gateway $mac)" >&2
}

main() {
	[[ $# -ge 1 ]] || usage
	local cmd=$1
	shift
	case $cmd in
	list) cmd_list ;;
	describe) cmd_describe "$@" ;;
	up) cmd_up "$@" ;;
	down) cmd_down "$@" ;;
	sink) cmd_sink "$@" ;;
	-h | --help | help) usage ;;
	*) usage ;;
	esac
}

main "$@"
