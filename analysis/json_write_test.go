package analysis

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// checkWriteJSON checks that WriteJSON writes tr byte for byte as
// writeJSONRef (encoding/json) does, or fails with the same error and
// writes nothing. It reports whether it did.
func checkWriteJSON(tb testing.TB, name string, tr *Trace) bool {
	tb.Helper()
	var got, want bytes.Buffer
	gerr := WriteJSON(&got, tr, Options{})
	werr := writeJSONRef(&want, tr, Options{})
	if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
		tb.Errorf("%s: error %v, encoding/json's %v", name, gerr, werr)
		return false
	}
	if g, w := got.Bytes(), want.Bytes(); !bytes.Equal(g, w) {
		i := 0
		for i < min(len(g), len(w)) && g[i] == w[i] {
			i++
		}
		from := max(i-80, 0)
		tb.Errorf("%s: output differs from encoding/json's at byte %d of %d (want %d):\ngot  …%s\nwant …%s",
			name, i, len(g), len(w), g[from:min(i+80, len(g))], w[from:min(i+80, len(w))])
		return false
	}
	return true
}

// oddStrings need escaping, or are just at its edge: quotes and
// backslashes, HTML characters (not escaped), control characters (short
// and \u00XX forms), DEL, U+2028 and U+2029, and invalid or truncated
// UTF-8.
var oddStrings = []string{
	"",
	"r1.example",
	`a"<b>&` + "\u2028",
	`back\slash "quoted" </script>`,
	"\x00\x01\b\f\n\r\t\x1f\x7f",
	"\u2029 para, é, 日本, 😀",
	"bad \xff\xfe utf-8",
	"cut \xe2\x80",
	"\xed\xa0\x80 surrogate",
	"\xf4\x90\x80\x80 past U+10FFFF",
	strings.Repeat("x", 300),
}

// TestWriteJSONReference checks WriteJSON against encoding/json over the
// traces of the other tests, the corpus records, hand-made traces that set
// every optional field, and random ones.
func TestWriteJSONReference(t *testing.T) {
	for name, tr := range referenceTraces(t) {
		checkWriteJSON(t, name, tr)
	}
}

// referenceTraces returns the traces of TestWriteJSONReference by name.
func referenceTraces(t *testing.T) map[string]*Trace {
	traces := map[string]*Trace{}
	add := func(name string, tr *Trace) {
		if _, dup := traces[name]; dup {
			t.Fatalf("trace %s twice", name)
		}
		traces[name] = tr
	}

	for i, tr := range jsonSeedTraces(t) {
		add(fmt.Sprint("seed ", i), tr)
	}
	for name, rec := range jsonCorpus(t, "*") {
		n := 0
		for tr, err := range ReadJSON(strings.NewReader(rec)) {
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			add(fmt.Sprint(name, " ", n), tr)
			n++
		}
	}
	for _, n := range []int{0, 1, 4, 8, 21, 64} {
		add(fmt.Sprint("diamond ", n), collect(t, diamond(n)))
		add(fmt.Sprint("lab diamond ", n), collect(t, labDiamond(n)))
		add(fmt.Sprint("lab diamond ASN ", n), withASNs(collect(t, labDiamond(n)), labASNs))
	}
	add("uneven split", collect(t, unevenSplit(32, 8)))
	add("uneven split 4", collect(t, unevenSplit(64, 4)))
	add("not reached", collect(t, repeat(3, flowSpec{hops: []string{"10.0.0.1", "", "10.2.0.1"}})))
	add("bench 16x8", benchTrace(16, 8))
	add("bench 256x30", benchTrace(256, 30))
	add("diamond trace", diamondTrace(16, 4))
	add("dot", dotTrace(`a"<b>&`+"\u2028"))
	add("atlas", atlasTrace())
	add("extras", extrasTrace(t))
	add("ipv6", ipv6Trace(t))
	add("path trace", pathTrace(t, "10.99.0.1", pA, pB, "10.0.0.1 * 10.2.3.2 10.99.0.1", pD))
	add("path trace ASN", withASNs(pathTrace(t, "10.99.0.1", pA, pB, pC, "10.0.0.1 10.1.9.9"), labASNs))
	rl := rlTrace("10.0.0.1 10.1.1.2 10.99.0.1", "10.0.0.1 * 10.99.0.1", "10.0.0.1 10.1.1.2 10.99.0.1", "10.0.0.1 10.1.2.2~ 10.99.0.1~")
	MarkRateLimited(rl)
	add("rate limited", rl)
	for name, tr := range oddTraces() {
		add(name, tr)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 500 {
		add(fmt.Sprint("random ", i), randomTrace(rng, ""))
	}
	return traces
}

// diamondTrace builds flows through a diamond: hop 1 a, hop 2 one of the
// branches by path ID, hop 3 the destination. (The traces of the MDA
// planner's searches are checked in its package.)
func diamondTrace(flows, width int) *Trace {
	dst := netip.MustParseAddr("10.99.0.1")
	t := &Trace{Destination: dst}
	for p := 1; p <= flows; p++ {
		b := netip.MustParseAddr(fmt.Sprintf("10.1.%d.2", (p-1)%width+1))
		t.Flows = append(t.Flows, Flow{PathID: p, Reached: true, ReachedTTL: 3, ProbedTTL: 3, Hops: []Hop{
			{TTL: 1, Addr: netip.MustParseAddr("10.0.0.1")}, {TTL: 2, Addr: b}, {TTL: 3, Addr: dst},
		}})
	}
	return t
}

// fullHop returns a hop that sets every field WriteJSON writes.
func fullHop(ttl int, s string) Hop {
	return Hop{
		TTL: ttl, Addr: netip.MustParseAddr("10.1.1.2"), RTT: 2345678 * time.Nanosecond,
		ICMPType: 11, ASN: 64501, IXP: s, Hostname: s,
		ExtFlags: probe.ExtRFC4884 | probe.ExtTruncated, Rewrites: probe.RewriteTOS | probe.RewriteLength | probe.RewriteDst | probe.RewriteChecksum, QuotedTOS: 0xb8,
		MPLS: []probe.MPLSLabel{{Label: 16001, TC: 5, TTL: 1}, {Label: 1<<20 - 1, TC: 7, S: true, TTL: 255}},
		Interfaces: []probe.InterfaceInfo{
			{Role: probe.IfIncoming, Ifindex: 103, Addr: netip.MustParseAddr("10.1.1.2"), Name: s, MTU: 1500},
			{Role: probe.IfSubIP},
			{Role: probe.IfOutgoing, Addr: netip.MustParseAddr("2001:db8::1")},
			{Role: probe.IfNextHop, Name: "eth0"},
			{Role: 9, MTU: 9000},
		},
		// Ignored on a hop that answered.
		RateLimited: netip.MustParseAddr("10.1.1.3"),
	}
}

// oddTraces returns traces at the edges of the schema: every optional
// field set, strings and addresses that need escaping, numbers at
// encoding/json's switch to exponents, times RFC 3339 cannot write.
func oddTraces() map[string]*Trace {
	out := map[string]*Trace{"empty": {}, "no flows": {Flows: []Flow{}, HasASN: true}}
	for i, s := range oddStrings {
		tr := rlTrace("10.0.0.1 10.1.1.2 * 10.99.0.1", "10.0.0.1 10.1.2.2 10.2.2.2~ 10.99.0.1", "10.0.0.1 * *")
		tr.Name, tr.Protocol = s, s
		tr.HasASN = true
		f := &tr.Flows[0]
		f.Hops[1] = fullHop(2, s)
		f.Hops[2].RateLimited = netip.MustParseAddr("10.2.1.2")
		f.Hops[2].ASN, f.Hops[2].Hostname = 64999, "silent, so not written"
		f.Hops[2].MPLS = []probe.MPLSLabel{{Label: 3}}
		h := &tr.Flows[1].Hops[1]
		h.Rewrites, h.QuotedTOS = probe.RewriteDst|0xf0, 1 // no "quoted_tos"
		h.ExtFlags = probe.ExtTruncated
		h.Interfaces = []probe.InterfaceInfo{{Role: probe.IfIncoming, Name: s}}
		tr.Flows[1].Hops[0].ExtFlags = probe.ExtRFC4884 | probe.ExtTruncated // without extensions: not written
		tr.Flows[1].Hops[3].Rewrites = 0x80                                  // no known rewrite
		tr.Flows[2].Hops[1].RateLimited = netip.MustParseAddr("fe80::1").WithZone(s + "z")
		tr.Flows[2].Hops[0].IXP = s
		tr.PerPacket = []PerPacketHop{{PathID: 1, TTL: 1, Addrs: addrs("10.0.0.1", "", "10.0.0.9")}, {PathID: 2, TTL: 4}}
		tr.MDA = &MDA{Confidence: 0.99, MaxPaths: 64, Incomplete: []int{}}
		out[fmt.Sprint("odd string ", i)] = tr
	}

	addrTrace := rlTrace("10.0.0.1 10.99.0.1")
	addrTrace.Destination = netip.MustParseAddr("fe80::1%eth0")
	addrTrace.Source = netip.Addr{}
	h := &addrTrace.Flows[0].Hops[0]
	h.Addr = netip.MustParseAddr("::ffff:10.0.0.1")
	h.Interfaces = []probe.InterfaceInfo{{Addr: netip.MustParseAddr("fe80::2").WithZone(`"\` + "\xff\n")}}
	addrTrace.Flows = append(addrTrace.Flows, Flow{PathID: 2, Hops: []Hop{{TTL: 1, Addr: netip.MustParseAddr("fe80::3%eth1"), RTT: time.Millisecond}}})
	out["addresses"] = addrTrace

	for i, d := range []time.Duration{0, 1, 499, 500, 1500, -1, -1500, 999999, math.MaxInt64, math.MinInt64, 1<<53 + 1} {
		tr := rlTrace("10.0.0.1 10.99.0.1")
		tr.End = tr.Start.Add(d)
		tr.Flows[0].Hops[0].RTT = d
		out[fmt.Sprint("duration ", i)] = tr
	}
	for i, c := range []float64{0, math.Copysign(0, -1), 0.95, 1, 1e-8, 1e-9, 1.5e-9, 2.5e-10, 9.99999e18, 1e19, 1e20, 1e30, -1e-8, math.MaxFloat64, math.SmallestNonzeroFloat64, 1.0 / 3, math.NaN(), math.Inf(1), math.Inf(-1)} {
		tr := rlTrace("10.0.0.1 10.99.0.1")
		tr.MDA = &MDA{Confidence: c}
		out[fmt.Sprint("confidence ", i)] = tr
	}
	for i, start := range []time.Time{
		{},
		time.Date(2025, 3, 1, 12, 0, 0, 0, time.FixedZone("IST", 5*3600+30*60)),
		time.Date(2025, 3, 1, 12, 0, 0, 1, time.FixedZone("", -(23*3600+59*60+59))),
		time.Date(2025, 3, 1, 12, 0, 0, 0, time.FixedZone("", 24*3600)),
		time.Date(2025, 3, 1, 12, 0, 0, 0, time.FixedZone("", -100*3600)),
		time.Date(2025, 3, 1, 12, 0, 0, 0, time.FixedZone("", 30)),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(1700000000, 0).Local(),
	} {
		tr := rlTrace("10.0.0.1 10.99.0.1")
		tr.Start, tr.End = start, start.Add(time.Second)
		tr.MDA = &MDA{Confidence: math.NaN()} // the start's error comes first
		out[fmt.Sprint("start ", i)] = tr
		tr2 := *tr
		tr2.MDA = nil
		out[fmt.Sprint("start ", i, " no MDA")] = &tr2
	}

	// Balancers whose p-values and fractions need exponents.
	out["balancer"] = benchTrace(1024, 6)
	return out
}

// randomTrace returns a trace of random flows over a small pool of
// addresses (so that flows share paths and the graph has diamonds and
// balancers), with each optional field set now and then; s, when not
// empty, is among the strings it uses.
func randomTrace(rng *rand.Rand, s string) *Trace {
	strs := append([]string{s}, oddStrings...)
	str := func() string { return strs[rng.IntN(len(strs))] }
	pool := []netip.Addr{
		netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.1.1.2"), netip.MustParseAddr("10.1.2.2"),
		netip.MustParseAddr("10.2.1.2"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::ffff:10.9.9.9"),
		netip.MustParseAddr("fe80::1").WithZone(s),
	}
	dst := pool[rng.IntN(len(pool))]
	tr := &Trace{
		Destination: dst, Name: str(), Source: pool[rng.IntN(len(pool))], Protocol: str(),
		MaxTTL: rng.IntN(256), ProbesSent: rng.IntN(1000), Replies: rng.IntN(1000),
		Start:   time.Unix(rng.Int64N(1<<34), rng.Int64N(1e9)).UTC(),
		Partial: rng.IntN(2) == 0, HasASN: rng.IntN(2) == 0,
	}
	tr.End = tr.Start.Add(time.Duration(rng.Int64N(int64(time.Hour))))
	for p := range rng.IntN(40) {
		p++
		f := Flow{PathID: p, SrcPort: uint16(rng.Uint32()), DstPort: uint16(rng.Uint32()), ProbedTTL: rng.IntN(30)}
		for ttl := range rng.IntN(8) {
			h := Hop{TTL: ttl + 1}
			if rng.IntN(5) > 0 {
				h.Addr = pool[rng.IntN(len(pool)-1)]
				h.RTT = time.Duration(rng.Int64N(int64(time.Second)))
				h.ICMPType, h.ICMPCode = uint8(rng.IntN(256)), uint8(rng.IntN(256))
			}
			if rng.IntN(3) == 0 {
				h.ASN = uint32(rng.IntN(3)) * 64500
			}
			if rng.IntN(8) == 0 {
				h.IXP = str()
			}
			if rng.IntN(8) == 0 {
				h.Hostname = str()
			}
			h.Inferred = rng.IntN(8) == 0
			if rng.IntN(8) == 0 {
				h.RateLimited = pool[rng.IntN(len(pool))]
			}
			h.Unsettled = rng.IntN(8) == 0
			if rng.IntN(6) == 0 {
				h.Rewrites, h.QuotedTOS = probe.Rewrite(rng.Uint32()), uint8(rng.Uint32())
			}
			h.ExtFlags = probe.ExtFlag(rng.IntN(4))
			for range rng.IntN(3) {
				h.MPLS = append(h.MPLS, probe.MPLSLabel{Label: rng.Uint32() >> 12, TC: uint8(rng.IntN(8)), S: rng.IntN(2) == 0, TTL: uint8(rng.Uint32())})
			}
			for range rng.IntN(2) {
				h.Interfaces = append(h.Interfaces, probe.InterfaceInfo{
					Role: probe.IfRole(rng.IntN(5)), Ifindex: uint32(rng.IntN(3)), Addr: pool[rng.IntN(len(pool))],
					Name: str(), MTU: uint32(rng.IntN(2)) * 1500,
				})
			}
			f.Hops = append(f.Hops, h)
		}
		if n := len(f.Hops); n > 0 && f.Hops[n-1].Addr == dst {
			f.Reached, f.ReachedTTL = true, n
		}
		tr.Flows = append(tr.Flows, f)
	}
	if rng.IntN(4) == 0 && len(tr.Flows) > 0 {
		tr.PerPacket = []PerPacketHop{{PathID: 1, TTL: 1, Addrs: pool[:rng.IntN(len(pool))]}}
	}
	if rng.IntN(2) == 0 {
		tr.MDA = &MDA{Confidence: rng.Float64(), MaxPaths: rng.IntN(4096), Complete: rng.IntN(2) == 0}
		if rng.IntN(2) == 0 {
			tr.MDA.Incomplete = []int{rng.IntN(100), rng.IntN(100)}
		}
	}
	return tr
}

// FuzzWriteJSON checks WriteJSON against encoding/json, and ReadJSON
// against WriteJSON (checkJSONRoundTrip), on the traces the fuzzer's bytes
// describe (traceFromBytes). Its seeds, in testdata/fuzz/FuzzWriteJSON,
// are traces of the other tests (writeJSONSeeds) and what fuzzing found.
func FuzzWriteJSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		tr := traceFromBytes(in)
		if checkWriteJSON(t, "trace", tr) {
			checkJSONRoundTrip(t, tr)
		}
	})
}

// TestAppendMillis checks appendMillis against millis.MarshalJSON: every
// nanosecond of the first two milliseconds either side of 0, and random
// durations of every magnitude, ties (ending in 500 ns) included.
func TestAppendMillis(t *testing.T) {
	check := func(d time.Duration) {
		want, _ := millis(d).MarshalJSON()
		if got := appendMillis(nil, d); !bytes.Equal(got, want) {
			t.Fatalf("%d ns: %s, want %s", int64(d), got, want)
		}
	}
	for d := -2 * time.Millisecond; d <= 2*time.Millisecond; d++ {
		check(d)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 1_000_000 {
		d := time.Duration(rng.Int64() >> rng.IntN(64))
		if rng.IntN(2) == 0 {
			d = -d
		}
		check(d)
		check(d - d%1000 + 500)
	}
	for _, d := range []time.Duration{1<<53 - 1, 1 << 53, 1<<53 + 1, 1<<53 - 500, 1<<53 + 500, math.MaxInt64, math.MinInt64} {
		check(d)
	}
}
