package annotate

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/analysis/asn"
	"github.com/traceflow-fast/traceflow-fast/internal/dnstest"
)

var testNames = map[string]string{
	"10.0.0.1": "r1.lab.test.",
	"10.1.1.2": "a1.lab.test.",
	"10.1.3.2": "a3.lab.test.",
}

func TestRDNSCache(t *testing.T) {
	s, r := dnstest.Loopback(t, testNames)
	rd := newResolver(r.LookupAddr, 2*time.Second, 4)
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	addrs := []netip.Addr{a("10.0.0.1"), a("10.1.1.2"), a("10.0.0.1"), a("10.9.9.9"), a("10.1.1.2")}
	got := rd.LookupAll(context.Background(), addrs)
	want := map[netip.Addr]string{a("10.0.0.1"): "r1.lab.test", a("10.1.1.2"): "a1.lab.test", a("10.9.9.9"): ""}
	if len(got) != len(want) {
		t.Errorf("%d names, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	for _, x := range []netip.Addr{a("10.0.0.1"), a("10.1.1.2")} {
		if n := s.Count(x); n != 1 {
			t.Errorf("%s asked %d times, want once", x, n)
		}
	}
	// Answers, NXDOMAIN included, come from the cache the second time.
	before := s.Count(a("10.9.9.9"))
	got = rd.LookupAll(context.Background(), []netip.Addr{a("10.0.0.1"), a("10.9.9.9"), a("10.1.3.2")})
	if got[a("10.0.0.1")] != "r1.lab.test" || got[a("10.1.3.2")] != "a3.lab.test" {
		t.Errorf("second round %v", got)
	}
	if s.Count(a("10.0.0.1")) != 1 || s.Count(a("10.9.9.9")) != before {
		t.Errorf("cached names asked again: %d, %d", s.Count(a("10.0.0.1")), s.Count(a("10.9.9.9")))
	}
}

func TestRDNSConcurrencyAndTimeout(t *testing.T) {
	s, r := dnstest.Loopback(t, testNames)
	var addrs []netip.Addr
	for i := range 24 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{10, 5, 0, byte(i + 1)}))
	}
	dead := netip.MustParseAddr("10.6.6.6")
	s.Slow(50*time.Millisecond, dead)
	addrs = append(addrs, dead)

	// Count the lookups in flight on the client side (the server's count
	// may lag behind an answer the client already has). The first 4 are
	// held until 4 are in flight, so that the resolver is seen reaching
	// its limit rather than hoped to (the server's delay only paces it).
	var mu sync.Mutex
	inflight, most := 0, 0
	full := make(chan struct{})
	var fill sync.Once
	lookup := func(ctx context.Context, addr string) ([]string, error) {
		mu.Lock()
		inflight++
		most = max(most, inflight)
		if inflight == 4 {
			fill.Do(func() { close(full) })
		}
		mu.Unlock()
		select {
		case <-full:
		case <-time.After(time.Minute):
			fill.Do(func() { close(full) }) // never 4 at once: most says so
		}
		defer func() {
			mu.Lock()
			inflight--
			mu.Unlock()
		}()
		return r.LookupAddr(ctx, addr)
	}
	rd := newResolver(lookup, 300*time.Millisecond, 4)
	got := rd.LookupAll(context.Background(), addrs)
	if most != 4 {
		t.Errorf("%d lookups at once, want the limit, 4", most)
	}
	if got[dead] != "" || len(got) != len(addrs) {
		t.Errorf("dead server answer %q, %d names", got[dead], len(got))
	}

	// An interrupted run does not cache its failures.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fresh := netip.MustParseAddr("10.1.3.2")
	if got := rd.LookupAll(ctx, []netip.Addr{fresh}); got[fresh] != "" {
		t.Errorf("cancelled lookup answered %q", got[fresh])
	}
	if got := rd.LookupAll(context.Background(), []netip.Addr{fresh}); got[fresh] != "a3.lab.test" {
		t.Errorf("after a cancelled lookup: %q", got[fresh])
	}
}

func TestAnnotate(t *testing.T) {
	_, r := dnstest.Loopback(t, testNames)
	db, err := asn.Load("../cmd/traceflow-fast/testdata/lab-asn.pfx2as", asn.Auto)
	if err != nil {
		t.Fatal(err)
	}
	ixps, err := asn.LoadIXPs("../cmd/traceflow-fast/testdata/lab-ixp.txt")
	if err != nil {
		t.Fatal(err)
	}
	a := &Annotator{ASN: db, IXP: ixps, RDNS: newResolver(r.LookupAddr, 2*time.Second, 4)}
	traces := []*analysis.Trace{traceOf("10.99.0.1", "10.0.0.1 10.1.1.2 10.2.1.2 10.99.0.1", "10.0.0.1 10.1.2.2 10.2.2.2 10.99.0.1",
		"10.0.0.1 10.1.3.2 10.2.3.2 10.99.0.1", "10.0.0.1 10.1.4.2 10.2.4.2 10.99.0.1", "10.0.0.1 * 10.2.3.2 10.99.0.1")}
	a.Apply(context.Background(), traces)
	tr := traces[0]
	if !tr.HasASN {
		t.Error("HasASN not set")
	}
	h := tr.Flows[0].Hops[0]
	if h.ASN != 64500 || h.Hostname != "r1.lab.test" || h.IXP != "" {
		t.Errorf("hop 10.0.0.1: %+v", h)
	}
	if h := tr.Flows[3].Hops[1]; h.ASN != 64501 || h.IXP != "LAB-IX" || h.Hostname != "" {
		t.Errorf("hop 10.1.4.2: %+v", h)
	}
	if h := tr.Flows[2].Hops[1]; h.ASN != 64502 || h.Hostname != "a3.lab.test" {
		t.Errorf("hop 10.1.3.2: %+v", h)
	}
	if h := tr.Flows[4].Hops[1]; h.ASN != 0 || h.Hostname != "" {
		t.Errorf("silent hop: %+v", h)
	}
	if got := tr.ASPaths(); len(got) != 2 || !tr.ASPathDivergence() {
		t.Errorf("AS paths %v", got)
	}
	var none *Annotator
	none.Apply(context.Background(), traces) // no annotations: nothing happens
}

// traceOf builds a trace to dst with a flow per path, its hops separated by
// spaces ("*" silent).
func traceOf(dst string, paths ...string) *analysis.Trace {
	d := netip.MustParseAddr(dst)
	tr := &analysis.Trace{Destination: d, Name: dst, Source: netip.MustParseAddr("10.0.0.2"), Protocol: "udp", MaxTTL: 30,
		Start: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	tr.End = tr.Start.Add(time.Second)
	for i, p := range paths {
		f := analysis.Flow{PathID: i + 1, SrcPort: uint16(33453 + i), DstPort: 33452}
		for j, h := range strings.Fields(p) {
			hop := analysis.Hop{TTL: j + 1}
			if h != "*" {
				hop.Addr, hop.RTT, hop.ICMPType = netip.MustParseAddr(h), time.Millisecond, 11
			}
			f.Hops = append(f.Hops, hop)
		}
		if n := len(f.Hops); n > 0 && f.Hops[n-1].Addr == d {
			f.Reached, f.ReachedTTL = true, n
			f.Hops[n-1].ICMPType, f.Hops[n-1].ICMPCode = 3, 3
		}
		tr.Flows = append(tr.Flows, f)
	}
	return tr
}
