// Package analysis turns the replies that traceflow-fast's prober matched
// into one path per flow, groups the flows that took the same path, and
// writes the result as the seed's vertical or horizontal table or as JSON
// Lines.
//
// The package is pure: no sockets, no privileges and no clock (times are
// passed in), so all of it runs in unprivileged unit tests.
//
// # True lengths
//
// The seed padded every path to the longest one. Here each flow keeps the
// length it really has (see Collector.Trace):
//
//   - a flow that reached the destination at TTL d has exactly d hops; replies
//     to probes with a larger TTL (sent before the distance was known) are
//     not hops, and when the destination answers several TTLs the smallest
//     one is its distance;
//   - a flow stopped by an ICMP destination unreachable from a router (net,
//     host, admin prohibited, ...) ends at that TTL, with the type and code
//     recorded, and is not reached;
//   - any other flow ends at its last responding hop: silent hops after it
//     are trimmed, and a flow from which nothing answered has no hops.
package analysis

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// ICMP values (RFC 792) that change how a hop ends a flow or is rendered.
const (
	icmpUnreachable     = 3
	codePortUnreachable = 3
)

// The same in ICMPv6 (RFC 4443), the ICMP of the hops of an IPv6 trace.
const (
	icmp6Unreachable     = 1
	icmp6TimeExceeded    = 3
	code6PortUnreachable = 4
)

// unreachable says whether a reply of type typ from addr is a destination
// unreachable: ICMP type 3, or ICMPv6 type 1 when addr is IPv6.
func unreachable(typ uint8, addr netip.Addr) bool {
	if addr.Is6() && !addr.Is4In6() {
		return typ == icmp6Unreachable
	}
	return typ == icmpUnreachable
}

// Hop is the answer to the probe with one TTL of one flow.
type Hop struct {
	TTL      int           // 1-based
	Addr     netip.Addr    // the replying node; invalid (zero) when silent
	RTT      time.Duration // round-trip time; 0 when silent
	ICMPType uint8         // of the reply (11 time exceeded, 3 unreachable; ICMPv6: 3, 1); 0 when silent
	ICMPCode uint8         // of the reply; 0 when silent
	// What the reply said beyond that (0 when not recorded): its TTL on
	// arrival, the probe's TTL as it quoted it, and its size in bytes.
	ReplyTTL  uint8
	QuotedTTL uint8
	Size      int
	// Set by annotations after the run (all optional, zero when unknown):
	ASN      uint32 // origin AS of Addr (--asn-db)
	IXP      string // name of the IXP peering LAN holding Addr (--ixp-db)
	Hostname string // reverse DNS name of Addr (--rdns)
	// Inferred says that this TTL of the flow was not probed: the hop is
	// implied by the MDA (see mda.FillInferred), and has no RTT.
	Inferred bool
	// ExtFlags qualifies MPLS and Interfaces (see probe.ExtRFC4884).
	ExtFlags probe.ExtFlag
	// Rewrites says how the probe, as this hop quoted it, differs from
	// what was sent: a middlebox before the hop changed it. QuotedTOS is
	// the TOS byte it quoted, set with probe.RewriteTOS.
	Rewrites  probe.Rewrite
	QuotedTOS uint8
	// From the reply's ICMP extensions (RFC 4884), nil when it had none:
	// the MPLS label stack the probe arrived with (RFC 4950), top first,
	// and the replying router's interface information (RFC 5837).
	MPLS       []probe.MPLSLabel
	Interfaces []probe.InterfaceInfo
	// RateLimited is set on a silent hop only (see MarkRateLimited): the
	// hop is probably this address, which answered other flows at this
	// TTL between the same neighbours and limits its ICMP rate. Distinct
	// paths count the hop as this address.
	RateLimited netip.Addr
	// Unsettled is set on a silent hop only: the routers' ICMP budget
	// explained the silences of its probe, and the retries the budget
	// allowed got no answer in time (--wait, --retries): the hop is
	// rate-limited, not settled. It is not a path of its own: its flow
	// joins the first distinct path that it matches at its other hops
	// (see UniquePaths).
	Unsettled bool
}

// HasRTT reports whether the hop has a measured round-trip time: it
// answered, was probed (not Inferred), and its reply carried the probe's
// send time (an RTT of 0 means it did not: a router that quotes only 8
// bytes of an ICMP echo request leaves the time out).
func (h Hop) HasRTT() bool { return !h.Silent() && !h.Inferred && h.RTT > 0 }

// Silent reports whether nothing answered the probe.
func (h Hop) Silent() bool { return !h.Addr.IsValid() }

// wild says whether a hop matches any address in a distinct path: rate-
// limited, not settled, and not placed by MarkRateLimited either.
func (h Hop) wild() bool { return h.Unsettled && h.Silent() && !h.RateLimited.IsValid() }

// Flow is what one path ID (one UDP source port) saw.
type Flow struct {
	PathID  int
	SrcPort uint16
	DstPort uint16
	// Hops holds TTL i+1 at index i, up to the flow's true length (see the
	// package documentation); silent hops inside the path are present with
	// an invalid Addr.
	Hops []Hop
	// Reached says whether the destination answered; the last hop is then
	// the destination.
	Reached bool
	// ReachedTTL is the destination's distance (len(Hops)), 0 when not
	// reached.
	ReachedTTL int
	// ProbedTTL is the highest TTL probed for this path ID (0 if unknown).
	ProbedTTL int
}

// Trace is the result of one run towards one destination.
type Trace struct {
	Destination netip.Addr
	Name        string // as given by the user (host name or address)
	Source      netip.Addr
	Protocol    string // of the probes: "udp", "tcp" or "icmp"
	MaxTTL      int    // the largest TTL the run was allowed to probe
	Flows       []Flow // sorted by PathID
	ProbesSent  int
	Replies     int // distinct probes answered (duplicates not counted)
	Start       time.Time
	End         time.Time
	Partial     bool // interrupted before completion
	MDA         *MDA // set when the number of path IDs was chosen adaptively (--paths auto)
	// PerPacket lists the probes answered from more than one address (see
	// Collector.Observe); the first answer is the hop.
	PerPacket []PerPacketHop

	// HasASN says that an AS database was consulted: hop ASNs are set
	// (0 = not in the database), and unique paths carry their AS path.
	HasASN bool

	// RateLimits lists the hops of the trace's paths whose routers
	// answered slower than they were asked (ICMP rate limits), as the run
	// knew them when the destination finished; nil when none did.
	RateLimits []RateLimit

	// Reused lists the vertices whose successors this trace took from
	// another destination's search of the same run (the stop set, see
	// package analysis/mda), ascending by TTL: the hops after them were
	// not proved by this destination's probes alone. Nil when none.
	Reused []ReusedVertex

	// Vantage is the agent that traced it, when it came from one through
	// package fleet; "" for a run of this host.
	Vantage string
}

// ReusedVertex is a vertex (an address at a TTL) that passed the stopping
// rule in a trace with the successors that the probes towards another
// destination, From, established: this trace's flows showed those
// successors and no other, in fewer flows than the rule asks, and the hops
// after a vertex with one successor were inferred.
type ReusedVertex struct {
	TTL  int
	Addr netip.Addr
	From netip.Addr
}

// RateLimit is what a run learnt of the ICMP budget of the routers at a
// TTL: of those after one address (the hop before them), or of all the
// routers at the TTL as one (After invalid), the routers of one TTL being
// possibly one router answering from several addresses.
type RateLimit struct {
	TTL   int
	After netip.Addr // the hop before, the source for TTL 1; invalid for the TTL as a whole
	// Pace is the rate, in probes a second, that the probes expiring
	// there were held to; 0 when they no longer were.
	Pace float64
	// Silences counts the probes that went unanswered there because
	// the routers' budget was spent, and went again once it was not.
	Silences int
	// Recovered counts the probes there answered only when sent again
	// (or late): silences that passed, as a budget's or loss's do, and an
	// anonymous router's do not.
	Recovered int
}

// MDA tells how an adaptive run chose its number of path IDs.
type MDA struct {
	Confidence float64 // e.g. 0.95
	MaxPaths   int     // the cap on path IDs
	// Complete says the stopping rule held at every vertex; false when
	// the cap on path IDs (or an interruption) stopped the search first.
	Complete bool
	// Incomplete lists the path IDs probed only at some TTLs whose other
	// hops could not be inferred (the search stopped first): their
	// replies count in Replies and ProbesSent, but they are not rows.
	Incomplete []int
}

// UniquePath is one distinct hop sequence and the path IDs that took it.
type UniquePath struct {
	Hops    []netip.Addr // index i is TTL i+1; invalid = silent (a rate-limited hop is its Hop.RateLimited)
	Reached bool
	PathIDs []int // ascending
	// ASPath is the origin AS of each hop with consecutive repeats
	// collapsed, 0 standing for a run of hops of unknown AS; nil unless
	// the trace HasASN.
	ASPath []uint32
}

// UniquePaths returns the distinct paths of t in the order of their first
// path ID. Two flows take the same path when their hop address sequences,
// silent positions and length included, are equal (and, which only differs
// in pathological cases, both reached the destination or both did not).
func (t *Trace) UniquePaths() []UniquePath {
	groups := t.groups()
	ups := make([]UniquePath, len(groups))
	for i, g := range groups {
		f := &t.Flows[g[0]]
		up := UniquePath{
			Hops:    make([]netip.Addr, len(f.Hops)),
			Reached: f.Reached,
			PathIDs: make([]int, len(g)),
		}
		for j, h := range f.Hops {
			up.Hops[j] = h.pathAddr()
		}
		if t.HasASN {
			up.ASPath = ASPath(f.Hops)
		}
		for j, fi := range g {
			up.PathIDs[j] = t.Flows[fi].PathID
		}
		slices.Sort(up.PathIDs)
		ups[i] = up
	}
	return ups
}

// groups returns the indices into t.Flows of the flows of each distinct
// path, in the order of each path's smallest path ID, the first of each a
// flow without unsettled hops where there is one. A flow with unsettled
// hops (Hop.Unsettled) joins the first path it matches at its other hops;
// only one that matches none is a path of its own.
func (t *Trace) groups() [][]int {
	order := make([]int, len(t.Flows))
	for i := range order {
		order[i] = i
	}
	// Flows are normally sorted already; a stable sort keeps this cheap and
	// correct for hand-built traces.
	slices.SortStableFunc(order, func(a, b int) int { return t.Flows[a].PathID - t.Flows[b].PathID })
	var groups [][]int
	var late []int // flows with unsettled hops
	for _, i := range order {
		if slices.ContainsFunc(t.Flows[i].Hops, Hop.wild) {
			late = append(late, i)
			continue
		}
		groups = t.join(groups, i, false)
	}
	if len(late) == 0 {
		return groups
	}
	for _, i := range late {
		groups = t.join(groups, i, true)
	}
	slices.SortStableFunc(groups, func(a, b []int) int { return t.minPathID(a) - t.minPathID(b) })
	return groups
}

// join adds flow i to the first of groups on its path (wild: unsettled
// hops match any address), or else as a group of its own.
func (t *Trace) join(groups [][]int, i int, wild bool) [][]int {
	for gi, g := range groups {
		if samePath(&t.Flows[g[0]], &t.Flows[i], wild) {
			groups[gi] = append(g, i)
			return groups
		}
	}
	return append(groups, []int{i})
}

func (t *Trace) minPathID(g []int) int {
	m := t.Flows[g[0]].PathID
	for _, i := range g[1:] {
		m = min(m, t.Flows[i].PathID)
	}
	return m
}

func samePath(a, b *Flow, wild bool) bool {
	if a.Reached != b.Reached || len(a.Hops) != len(b.Hops) {
		return false
	}
	for i := range a.Hops {
		if a.Hops[i].pathAddr() != b.Hops[i].pathAddr() && !(wild && (a.Hops[i].wild() || b.Hops[i].wild())) {
			return false
		}
	}
	return true
}

// Summary returns the line that ends every output format, such as
// "2 distinct paths among 16 path IDs".
func (t *Trace) Summary() string {
	return PathsSummary(len(t.groups()), len(t.Flows))
}

// PathsSummary is the summary line of a trace with distinct paths among
// ids path IDs (see Trace.Summary).
func PathsSummary(distinct, ids int) string {
	return plural(distinct, "distinct path", "distinct paths") + " among " + plural(ids, "path ID", "path IDs")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// IDRanges renders sorted path IDs compactly: runs of three or more
// consecutive IDs become ranges, as in "1-4,7,9,10".
func IDRanges(ids []int) string {
	var b strings.Builder
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(ids[i]))
		switch {
		case j-i >= 2:
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(ids[j]))
		case j > i:
			b.WriteByte(',')
			b.WriteString(strconv.Itoa(ids[j]))
		}
		i = j + 1
	}
	return b.String()
}
