package analysis

import (
	"encoding/json"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// WriteJSON appends its records by hand rather than marshalling jsonTrace:
// a bulk scan writes thousands of them, and encoding/json would need a copy
// of every flow and hop, a pointer per optional hop field, and reflection
// over it all. The functions below write exactly what encoding/json writes
// for jsonTrace and its parts with HTML escaping off: the same keys in the
// same order, the same omitempty rules, numbers and string escaping.
// jsonTrace remains the schema, and what ReadJSON decodes.

// jsonBufs holds the buffers records are built in, reused across calls.
var jsonBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledJSON is the largest buffer put back in jsonBufs: the rare
// record of thousands of path IDs should not stay in memory for good.
const maxPooledJSON = 1 << 20

// appendTraceJSON appends the JSON Lines record of t, newline included.
// Its only errors are encoding/json's: a start time that RFC 3339 cannot
// write, or an MDA confidence that is not a finite number.
func appendTraceJSON(b []byte, t *Trace) ([]byte, error) {
	b = append(b, `{"destination":`...)
	b = appendAddrJSON(b, t.Destination)
	b = append(b, `,"name":`...)
	b = appendStringJSON(b, t.Name)
	b = append(b, `,"source":`...)
	b = appendAddrJSON(b, t.Source)
	b = append(b, `,"protocol":`...)
	b = appendStringJSON(b, t.Protocol)
	b = appendKeyInt(b, `,"max_ttl":`, int64(t.MaxTTL))
	b = append(b, `,"start":`...)
	b, ok := appendTimeJSON(b, t.Start)
	if !ok {
		// The error encoding/json gives, which time.Time.MarshalJSON makes.
		_, err := json.Marshal(t.Start)
		return b, err
	}
	b = append(b, `,"duration_ms":`...)
	b = appendMillis(b, t.End.Sub(t.Start))
	b = appendKeyBool(b, `,"partial":`, t.Partial)
	b = appendKeyInt(b, `,"probes_sent":`, int64(t.ProbesSent))
	b = appendKeyInt(b, `,"replies":`, int64(t.Replies))

	b = append(b, `,"flows":[`...)
	for i := range t.Flows {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendFlowJSON(b, &t.Flows[i])
	}
	b = append(b, `],"unique_paths":[`...)
	ups := t.UniquePaths()
	for i := range ups {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendUniquePathJSON(b, t, &ups[i])
	}
	b = append(b, `],"graph":`...)
	b = appendGraphJSON(b, BuildGraph(t))
	b = append(b, `,"summary":`...)
	b = appendStringJSON(b, PathsSummary(len(ups), len(t.Flows)))

	if m := t.MDA; m != nil {
		b = append(b, `,"mda":{"confidence":`...)
		if b, ok = appendFloatJSON(b, m.Confidence*100); !ok {
			_, err := json.Marshal(m.Confidence * 100)
			return b, err
		}
		b = appendKeyInt(b, `,"max_paths":`, int64(m.MaxPaths))
		b = appendKeyBool(b, `,"complete":`, m.Complete)
		if len(m.Incomplete) > 0 {
			b = append(b, `,"incomplete":`...)
			b = appendIntsJSON(b, m.Incomplete)
		}
		b = append(b, '}')
	}
	if t.HasASN {
		asPaths := t.ASPaths()
		b = append(b, `,"as_paths":`...)
		if asPaths == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, '[')
			for i, p := range asPaths {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendASNsJSON(b, p, false)
			}
			b = append(b, ']')
		}
		b = appendKeyBool(b, `,"as_path_divergence":`, len(asPaths) > 1)
	}
	if b, ok = appendRateLimitsJSON(b, t.RateLimits); !ok {
		_, err := json.Marshal(t.RateLimits) // the error encoding/json gives
		return b, err
	}
	b = appendReusedJSON(b, t.Reused)
	return append(b, "}\n"...), nil
}

// appendRateLimitsJSON appends the "rate_limits" member when there are
// any; false when a pace is not a number JSON can hold.
func appendRateLimitsJSON(b []byte, rls []RateLimit) ([]byte, bool) {
	if len(rls) == 0 {
		return b, true
	}
	b = append(b, `,"rate_limits":[`...)
	for i := range rls {
		if i > 0 {
			b = append(b, ',')
		}
		var ok bool
		if b, ok = appendRateLimitJSON(b, &rls[i]); !ok {
			return b, false
		}
	}
	return append(b, ']'), true
}

// appendReusedJSON appends the "reused" member when there are any.
func appendReusedJSON(b []byte, reused []ReusedVertex) []byte {
	if len(reused) == 0 {
		return b
	}
	b = append(b, `,"reused":[`...)
	for i, r := range reused {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendKeyInt(b, `{"ttl":`, int64(r.TTL))
		b = append(b, `,"addr":`...)
		b = appendAddrJSON(b, r.Addr)
		b = append(b, `,"from":`...)
		b = append(appendAddrJSON(b, r.From), '}')
	}
	return append(b, ']')
}

// appendRateLimitJSON appends rl as a jsonRateLimit; false when its pace
// is not a number JSON can hold.
func appendRateLimitJSON(b []byte, rl *RateLimit) ([]byte, bool) {
	b = appendKeyInt(b, `{"ttl":`, int64(rl.TTL))
	b = append(b, `,"after":`...)
	if rl.After.IsValid() {
		b = appendAddrJSON(b, rl.After)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"pace_per_s":`...)
	b, ok := appendFloatJSON(b, rl.Pace)
	if !ok {
		return b, false
	}
	b = appendKeyInt(b, `,"silences":`, int64(rl.Silences))
	if rl.Recovered != 0 {
		b = appendKeyInt(b, `,"recovered":`, int64(rl.Recovered))
	}
	return append(b, '}'), true
}

// appendFlowJSON appends f as a jsonFlow.
func appendFlowJSON(b []byte, f *Flow) []byte {
	b = appendKeyInt(b, `{"path_id":`, int64(f.PathID))
	b = append(b, `,"src_port":`...)
	b = strconv.AppendUint(b, uint64(f.SrcPort), 10)
	b = append(b, `,"dst_port":`...)
	b = strconv.AppendUint(b, uint64(f.DstPort), 10)
	b = appendKeyBool(b, `,"reached":`, f.Reached)
	b = appendKeyInt(b, `,"reached_ttl":`, int64(f.ReachedTTL))
	b = appendKeyInt(b, `,"probed_ttl":`, int64(f.ProbedTTL))
	b = append(b, `,"hops":[`...)
	for i := range f.Hops {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendHopJSON(b, &f.Hops[i])
	}
	return append(b, "]}"...)
}

// appendHopJSON appends h as a jsonHop: a silent hop has only its TTL, null
// "addr" and "rtt_ms", and its rate-limited address; an inferred one has a
// null "rtt_ms".
func appendHopJSON(b []byte, h *Hop) []byte {
	b = appendKeyInt(b, `{"ttl":`, int64(h.TTL))
	if h.Silent() {
		b = append(b, `,"addr":null,"rtt_ms":null`...)
		if h.RateLimited.IsValid() {
			b = append(b, `,"rate_limited":`...)
			b = appendAddrJSON(b, h.RateLimited)
		}
		if h.Unsettled {
			b = append(b, `,"unsettled":true`...)
		}
		return append(b, '}')
	}
	b = append(b, `,"addr":`...)
	b = appendAddrJSON(b, h.Addr)
	b = append(b, `,"rtt_ms":`...)
	if h.Inferred {
		b = append(b, "null"...)
	} else {
		b = appendMillis(b, h.RTT)
	}
	b = append(b, `,"icmp_type":`...)
	b = strconv.AppendUint(b, uint64(h.ICMPType), 10)
	b = append(b, `,"icmp_code":`...)
	b = strconv.AppendUint(b, uint64(h.ICMPCode), 10)
	if h.ASN != 0 {
		b = append(b, `,"asn":`...)
		b = strconv.AppendUint(b, uint64(h.ASN), 10)
	}
	if h.IXP != "" {
		b = append(b, `,"ixp":`...)
		b = appendStringJSON(b, h.IXP)
	}
	if h.Hostname != "" {
		b = append(b, `,"hostname":`...)
		b = appendStringJSON(b, h.Hostname)
	}
	if h.Inferred {
		b = append(b, `,"inferred":true`...)
	}
	b = appendHopExtrasJSON(b, h)
	return append(b, '}')
}

// appendHopExtrasJSON appends the jsonHopExtras fields of h, each after a
// comma, leaving out those with nothing to say.
func appendHopExtrasJSON(b []byte, h *Hop) []byte {
	if len(h.MPLS) > 0 {
		b = append(b, `,"mpls":[`...)
		for i, l := range h.MPLS {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"label":`...)
			b = strconv.AppendUint(b, uint64(l.Label), 10)
			b = append(b, `,"tc":`...)
			b = strconv.AppendUint(b, uint64(l.TC), 10)
			b = appendKeyBool(b, `,"s":`, l.S)
			b = append(b, `,"ttl":`...)
			b = strconv.AppendUint(b, uint64(l.TTL), 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(h.Interfaces) > 0 {
		b = append(b, `,"interfaces":[`...)
		for i, in := range h.Interfaces {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"role":`...)
			b = appendStringJSON(b, in.Role.String())
			if in.Ifindex != 0 {
				b = append(b, `,"ifindex":`...)
				b = strconv.AppendUint(b, uint64(in.Ifindex), 10)
			}
			if in.Addr.IsValid() {
				b = append(b, `,"addr":`...)
				b = appendAddrJSON(b, in.Addr)
			}
			if in.Name != "" {
				b = append(b, `,"name":`...)
				b = appendStringJSON(b, in.Name)
			}
			if in.MTU != 0 {
				b = append(b, `,"mtu":`...)
				b = strconv.AppendUint(b, uint64(in.MTU), 10)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(h.MPLS) > 0 || len(h.Interfaces) > 0 {
		b = appendKeyBool(b, `,"rfc4884":`, h.ExtFlags&probe.ExtRFC4884 != 0)
		if h.ExtFlags&probe.ExtTruncated != 0 {
			b = append(b, `,"ext_truncated":true`...)
		}
	}
	if rw := h.Rewrites; rw&(1<<len(rewriteNames)-1) != 0 {
		b = append(b, `,"rewritten":[`...)
		sep := false
		for i, n := range rewriteNames {
			if rw&(1<<i) != 0 {
				if sep {
					b = append(b, ',')
				}
				b = append(b, '"')
				b = append(b, n...)
				b = append(b, '"')
				sep = true
			}
		}
		b = append(b, ']')
	}
	if h.Rewrites&probe.RewriteTOS != 0 {
		b = append(b, `,"quoted_tos":`...)
		b = strconv.AppendUint(b, uint64(h.QuotedTOS), 10)
	}
	return b
}

// appendUniquePathJSON appends up, a distinct path of t, as a
// jsonUniquePath.
func appendUniquePathJSON(b []byte, t *Trace, up *UniquePath) []byte {
	b = append(b, `{"hops":[`...)
	for i, a := range up.Hops {
		if i > 0 {
			b = append(b, ',')
		}
		if a.IsValid() {
			b = appendAddrJSON(b, a)
		} else {
			b = append(b, "null"...)
		}
	}
	b = append(b, `],"path_ids":`...)
	b = appendIntsJSON(b, up.PathIDs)
	b = appendKeyBool(b, `,"reached":`, up.Reached)
	if len(up.ASPath) > 0 {
		b = append(b, `,"as_path":`...)
		b = appendASNsJSON(b, up.ASPath, true)
	}
	b = append(b, `,"rtt_ms":`...)
	if s := t.PathRTT(up); s.N > 0 {
		b = appendRTTJSON(b, s.Min, s.Avg, s.Max)
	} else {
		b = append(b, "null"...)
	}
	return append(b, '}')
}

// appendGraphJSON appends g as a jsonGraph; its arrays are never null.
func appendGraphJSON(b []byte, g *Graph) []byte {
	b = append(b, `{"nodes":[`...)
	for i := range g.Nodes {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendNodeJSON(b, &g.Nodes[i])
	}
	b = append(b, `],"links":[`...)
	for i := range g.Links {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendLinkJSON(b, &g.Links[i])
	}
	b = append(b, `],"diamonds":[`...)
	for i := range g.Diamonds {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendDiamondJSON(b, &g.Diamonds[i])
	}
	b = append(b, `],"branching":`...)
	if g.Branching == nil {
		b = append(b, "[]"...)
	} else {
		b = appendIntsJSON(b, g.Branching)
	}
	b = append(b, `,"balancers":[`...)
	for i := range g.Balancers {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendBalancerJSON(b, &g.Balancers[i])
	}
	b = append(b, `],"per_packet":[`...)
	for i := range g.PerPacket {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendPerPacketJSON(b, &g.PerPacket[i])
	}
	return append(b, "]}"...)
}

// appendNodeJSON appends n as a jsonNode.
func appendNodeJSON(b []byte, n *Node) []byte {
	b = appendKeyInt(b, `{"id":`, int64(n.ID))
	b = append(b, `,"addr":`...)
	if n.Silent {
		b = append(b, "null"...)
	} else {
		b = appendAddrJSON(b, n.Addr)
	}
	b = appendKeyInt(b, `,"ttl":`, int64(n.TTL))
	b = appendKeyBool(b, `,"silent":`, n.Silent)
	b = append(b, `,"path_ids":`...)
	b = appendIntsJSON(b, n.PathIDs)
	b = appendKeyBool(b, `,"destination":`, n.Destination)
	b = appendKeyBool(b, `,"diverge":`, n.Diverge)
	b = appendKeyBool(b, `,"converge":`, n.Converge)
	b = append(b, `,"rtt_ms":`...)
	if !n.Silent && n.RTTCount > 0 { // else silent or inferred: no RTT
		b = appendRTTJSON(b, n.RTTMin, n.RTTAvg, n.RTTMax)
	} else {
		b = append(b, "null"...)
	}
	if n.ASN != 0 {
		b = append(b, `,"asn":`...)
		b = strconv.AppendUint(b, uint64(n.ASN), 10)
	}
	if n.IXP != "" {
		b = append(b, `,"ixp":`...)
		b = appendStringJSON(b, n.IXP)
	}
	if n.PerPacket {
		b = append(b, `,"per_packet":true`...)
	}
	return append(b, '}')
}

// appendLinkJSON appends l as a jsonLink.
func appendLinkJSON(b []byte, l *Link) []byte {
	b = appendKeyInt(b, `{"from":`, int64(l.From))
	b = appendKeyInt(b, `,"to":`, int64(l.To))
	b = appendKeyInt(b, `,"ttl":`, int64(l.TTL))
	b = append(b, `,"path_ids":`...)
	b = appendIntsJSON(b, l.PathIDs)
	return append(b, '}')
}

// appendDiamondJSON appends d as a jsonDiamond.
func appendDiamondJSON(b []byte, d *Diamond) []byte {
	b = appendKeyInt(b, `{"diverge":`, int64(d.Diverge))
	b = appendKeyInt(b, `,"converge":`, int64(d.Converge))
	b = appendKeyInt(b, `,"first_ttl":`, int64(d.FirstTTL))
	b = appendKeyInt(b, `,"last_ttl":`, int64(d.LastTTL))
	b = appendKeyInt(b, `,"max_width":`, int64(d.MaxWidth))
	b = appendKeyInt(b, `,"length":`, int64(d.Length))
	b = appendKeyInt(b, `,"paths":`, int64(d.Paths))
	return append(b, '}')
}

// appendBalancerJSON appends lb as a jsonBalancer.
func appendBalancerJSON(b []byte, lb *LoadBalancer) []byte {
	b = appendKeyInt(b, `{"node":`, int64(lb.Node))
	b = appendKeyInt(b, `,"ttl":`, int64(lb.TTL))
	b = append(b, `,"shares":[`...)
	for j, sh := range lb.Shares {
		if j > 0 {
			b = append(b, ',')
		}
		b = appendKeyInt(b, `{"node":`, int64(sh.Node))
		b = appendKeyInt(b, `,"flows":`, int64(sh.Flows))
		b = append(b, `,"fraction":`...)
		b = appendRatio(b, sh.Fraction)
		b = append(b, '}')
	}
	b = appendKeyBool(b, `],"uneven":`, lb.Uneven)
	b = append(b, `,"p_value":`...)
	b = appendRatio(b, lb.PValue)
	return append(b, '}')
}

// appendPerPacketJSON appends pp as a jsonPerPacket.
func appendPerPacketJSON(b []byte, pp *PerPacketHop) []byte {
	b = appendKeyInt(b, `{"path_id":`, int64(pp.PathID))
	b = appendKeyInt(b, `,"ttl":`, int64(pp.TTL))
	if pp.Vertex.IsValid() {
		b = append(b, `,"vertex":`...)
		b = appendAddrJSON(b, pp.Vertex)
	}
	if pp.RouteChange {
		b = append(b, `,"route_change":true`...)
	}
	b = append(b, `,"addrs":`...)
	if pp.Addrs == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for j, a := range pp.Addrs {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendAddrJSON(b, a)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendRTTJSON appends a jsonRTT.
func appendRTTJSON(b []byte, lo, avg, hi time.Duration) []byte {
	b = append(b, `{"min":`...)
	b = appendMillis(b, lo)
	b = append(b, `,"avg":`...)
	b = appendMillis(b, avg)
	b = append(b, `,"max":`...)
	b = appendMillis(b, hi)
	return append(b, '}')
}

// appendIntsJSON appends s as an array, null when nil.
func appendIntsJSON(b []byte, s []int) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, n := range s {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(n), 10)
	}
	return append(b, ']')
}

// appendASNsJSON appends AS numbers as an array, null when nil; with
// zeroNull, an AS 0 (unknown) is null too.
func appendASNsJSON(b []byte, s []uint32, zeroNull bool) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, n := range s {
		if i > 0 {
			b = append(b, ',')
		}
		if n == 0 && zeroNull {
			b = append(b, "null"...)
		} else {
			b = strconv.AppendUint(b, uint64(n), 10)
		}
	}
	return append(b, ']')
}

// appendMillis appends d as millis.MarshalJSON writes it: the float64
// quotient d/1e6 with three decimals. Below 2^53 ns that quotient is within
// 1 ns of the exact one, and the only whole numbers of nanoseconds within
// 1 ns of a rounding boundary (k+1/2 µs) are on it: so but for such ties, d
// rounded to whole microseconds has the same digits. Ties, where the
// quotient falls on either side, and negative and huge durations take
// strconv's way.
func appendMillis(b []byte, d time.Duration) []byte {
	if d < 0 || d >= 1<<53 || d%1000 == 500 {
		return strconv.AppendFloat(b, float64(d)/float64(time.Millisecond), 'f', 3, 64)
	}
	us := (d + 500) / 1000
	b = strconv.AppendInt(b, int64(us/1000), 10)
	frac := us % 1000
	return append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
}

// appendRatio appends f as ratio.MarshalJSON writes it.
func appendRatio(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, f, 'g', 4, 64)
}

// appendFloatJSON appends f as encoding/json writes a float64: the
// shortest representation, in exponent form below 1e-6 and from 1e21,
// with no leading zero in the exponent. It reports false, having appended
// nothing, for NaN and infinities, which encoding/json refuses.
func appendFloatJSON(b []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-07 to e-7
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// appendTimeJSON appends t as time.Time.MarshalJSON writes it. It reports
// false, for the caller to get the error from encoding/json, when RFC 3339
// cannot represent t: a year outside [0,9999] or a zone offset of 24 hours
// or more.
func appendTimeJSON(b []byte, t time.Time) ([]byte, bool) {
	b = append(b, '"')
	n := len(b)
	b = t.AppendFormat(b, time.RFC3339Nano)
	s := b[n:]
	if s[len("9999")] != '-' {
		return b, false
	}
	if s[len(s)-1] != 'Z' {
		c, hh := s[len(s)-len("Z07:00")], s[len(s)-len("07:00"):]
		if '0' <= c && c <= '9' || 10*(hh[0]-'0')+(hh[1]-'0') >= 24 {
			return b, false
		}
	}
	return append(b, '"'), true
}

// appendAddrJSON appends a as encoding/json writes a netip.Addr: its text
// as a string, "" when invalid.
func appendAddrJSON(b []byte, a netip.Addr) []byte {
	b = append(b, '"')
	n := len(b)
	b = a.AppendTo(b)
	if a.Zone() != "" {
		// A zone is any string, which may need escaping.
		text := string(b[n:])
		return appendStringJSON(b[:n-1], text)
	}
	return append(b, '"')
}

// appendStringJSON appends s as a JSON string the way encoding/json does
// with HTML escaping off: '"', '\\' and control characters escaped (with
// the short forms \b, \f, \n, \r and \t), invalid UTF-8 replaced by
// \ufffd, and U+2028 and U+2029 escaped.
func appendStringJSON(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendKeyInt appends key (with the punctuation before it and its colon)
// and v.
func appendKeyInt(b []byte, key string, v int64) []byte {
	return strconv.AppendInt(append(b, key...), v, 10)
}

// appendKeyBool appends key (with the punctuation before it and its colon)
// and v.
func appendKeyBool(b []byte, key string, v bool) []byte {
	return strconv.AppendBool(append(b, key...), v)
}
