package main

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/analysis/asn"
)

// fakeDNS is a tiny DNS server for tests: it answers PTR questions from a
// table, NXDOMAIN for addresses not in it, and never answers the addresses
// in silent. It counts the questions per address.
type fakeDNS struct {
	conn   net.PacketConn
	names  map[netip.Addr]string
	delay  time.Duration
	silent map[netip.Addr]bool

	mu      sync.Mutex
	queries map[netip.Addr]int
}

// serveDNS answers on conn (a UDP socket the test opened, on loopback or in
// a lab namespace) until the test ends.
func serveDNS(t testing.TB, conn net.PacketConn, names map[string]string) *fakeDNS {
	t.Helper()
	s := &fakeDNS{conn: conn, names: map[netip.Addr]string{}, silent: map[netip.Addr]bool{}, queries: map[netip.Addr]int{}}
	for a, n := range names {
		s.names[netip.MustParseAddr(a)] = n
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		for {
			buf := make([]byte, 1500)
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			go s.answer(buf[:n], from)
		}
	}()
	return s
}

// slow makes every answer wait delay, and never answers the silent
// addresses.
func (s *fakeDNS) slow(delay time.Duration, silent ...netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = delay
	for _, a := range silent {
		s.silent[a] = true
	}
}

func (s *fakeDNS) count(a netip.Addr) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[a]
}

func (s *fakeDNS) answer(msg []byte, from net.Addr) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return
	}
	q, err := p.Question()
	if err != nil {
		return
	}
	addr, ok := arpaAddr(q.Name.String())
	s.mu.Lock()
	s.queries[addr]++
	silent, delay := s.silent[addr], s.delay
	s.mu.Unlock()
	if silent {
		return
	}
	time.Sleep(delay)
	name, found := s.names[addr]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if !ok || !found || q.Type != dnsmessage.TypePTR {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.StartQuestions()
	b.Question(q)
	if rh.RCode == dnsmessage.RCodeSuccess {
		b.StartAnswers()
		b.PTRResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60},
			dnsmessage.PTRResource{PTR: dnsmessage.MustNewName(name)})
	}
	out, err := b.Finish()
	if err != nil {
		return
	}
	s.conn.WriteTo(out, from)
}

// arpaAddr reads "4.3.2.1.in-addr.arpa." as 1.2.3.4.
func arpaAddr(name string) (netip.Addr, bool) {
	rest, ok := strings.CutSuffix(strings.ToLower(name), ".in-addr.arpa.")
	if !ok {
		return netip.Addr{}, false
	}
	l := strings.Split(rest, ".")
	if len(l) != 4 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(l[3] + "." + l[2] + "." + l[1] + "." + l[0])
	return a, err == nil
}

// loopbackDNS starts a fakeDNS on 127.0.0.1 and returns it with a resolver
// that asks only it.
func loopbackDNS(t *testing.T, names map[string]string) (*fakeDNS, *net.Resolver) {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := serveDNS(t, conn, names)
	r, err := dnsServer(conn.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

var testNames = map[string]string{
	"10.0.0.1": "r1.lab.test.",
	"10.1.1.2": "a1.lab.test.",
	"10.1.3.2": "a3.lab.test.",
}

func TestRDNSCache(t *testing.T) {
	s, r := loopbackDNS(t, testNames)
	rd := newRDNS(r.LookupAddr, 2*time.Second, 4)
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	addrs := []netip.Addr{a("10.0.0.1"), a("10.1.1.2"), a("10.0.0.1"), a("10.9.9.9"), a("10.1.1.2")}
	got := rd.lookupAll(context.Background(), addrs)
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
		if n := s.count(x); n != 1 {
			t.Errorf("%s asked %d times, want once", x, n)
		}
	}
	// Answers, NXDOMAIN included, come from the cache the second time.
	before := s.count(a("10.9.9.9"))
	got = rd.lookupAll(context.Background(), []netip.Addr{a("10.0.0.1"), a("10.9.9.9"), a("10.1.3.2")})
	if got[a("10.0.0.1")] != "r1.lab.test" || got[a("10.1.3.2")] != "a3.lab.test" {
		t.Errorf("second round %v", got)
	}
	if s.count(a("10.0.0.1")) != 1 || s.count(a("10.9.9.9")) != before {
		t.Errorf("cached names asked again: %d, %d", s.count(a("10.0.0.1")), s.count(a("10.9.9.9")))
	}
}

func TestRDNSConcurrencyAndTimeout(t *testing.T) {
	s, r := loopbackDNS(t, testNames)
	var addrs []netip.Addr
	for i := range 24 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{10, 5, 0, byte(i + 1)}))
	}
	dead := netip.MustParseAddr("10.6.6.6")
	s.slow(50*time.Millisecond, dead)
	addrs = append(addrs, dead)

	// Count the lookups in flight on the client side (the server's count
	// may lag behind an answer the client already has).
	var mu sync.Mutex
	inflight, most := 0, 0
	lookup := func(ctx context.Context, addr string) ([]string, error) {
		mu.Lock()
		inflight++
		most = max(most, inflight)
		mu.Unlock()
		defer func() {
			mu.Lock()
			inflight--
			mu.Unlock()
		}()
		return r.LookupAddr(ctx, addr)
	}
	rd := newRDNS(lookup, 300*time.Millisecond, 4)
	start := time.Now()
	got := rd.lookupAll(context.Background(), addrs)
	took := time.Since(start)
	if most > 4 {
		t.Errorf("%d lookups at once, limit 4", most)
	}
	if most < 2 {
		t.Errorf("lookups not concurrent: at most %d at once", most)
	}
	if got[dead] != "" || len(got) != len(addrs) {
		t.Errorf("dead server answer %q, %d names", got[dead], len(got))
	}
	// 24 lookups of 50 ms, 4 at a time, and one that times out at 300 ms
	// meanwhile: well under what one at a time would take.
	if took > 1500*time.Millisecond {
		t.Errorf("took %v", took)
	}

	// An interrupted run does not cache its failures.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fresh := netip.MustParseAddr("10.1.3.2")
	if got := rd.lookupAll(ctx, []netip.Addr{fresh}); got[fresh] != "" {
		t.Errorf("cancelled lookup answered %q", got[fresh])
	}
	if got := rd.lookupAll(context.Background(), []netip.Addr{fresh}); got[fresh] != "a3.lab.test" {
		t.Errorf("after a cancelled lookup: %q", got[fresh])
	}
}

func TestAnnotate(t *testing.T) {
	_, r := loopbackDNS(t, testNames)
	db, err := asn.Load("testdata/lab-asn.pfx2as", asn.Auto)
	if err != nil {
		t.Fatal(err)
	}
	ixps, err := asn.LoadIXPs("testdata/lab-ixp.txt")
	if err != nil {
		t.Fatal(err)
	}
	a := &annotator{asn: db, ixp: ixps, rdns: newRDNS(r.LookupAddr, 2*time.Second, 4)}
	traces := []*analysis.Trace{traceOf("10.99.0.1", append(diamondPaths, "10.0.0.1 * 10.2.3.2 10.99.0.1")...)}
	a.apply(context.Background(), traces)
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
	var none *annotator
	none.apply(context.Background(), traces) // no annotations: nothing happens
}

// TestAnnotationFlagErrors checks that bad tables and resolver settings fail
// in one line before any probe.
func TestAnnotationFlagErrors(t *testing.T) {
	bad := writeFile(t, "bad.txt", "hello world\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--asn-db", "/no/such/db", "x"}, "--asn-db asn: open /no/such/db"},
		{[]string{"--asn-db", bad, "x"}, "bad.txt: asn: line 1: not an AS table"},
		{[]string{"--asn-db", "testdata/lab-asn.pfx2as", "--asn-db-format", "pyasn", "x"}, "line 1 (pyasn)"},
		{[]string{"--asn-db", "testdata/lab-asn.pfx2as", "--asn-db-format", "mrt", "x"}, `--asn-db-format "mrt"`},
		{[]string{"--asn-db-format", "pfx2as", "x"}, "--asn-db-format needs --asn-db"},
		{[]string{"--ixp-db", bad, "x"}, "--ixp-db"},
		{[]string{"--rdns-server", "127.0.0.1", "x"}, "--rdns-server needs --rdns"},
		{[]string{"--rdns", "--rdns-server", "dns.example", "x"}, `--rdns-server "dns.example"`},
	} {
		out := runCmd(tc.args...)
		if out.code != exitError {
			t.Errorf("%q: exit %d, want %d", tc.args, out.code, exitError)
		}
		lines := strings.Split(strings.TrimSpace(out.stderr), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("%q: stderr %q, want one line with %q", tc.args, out.stderr, tc.want)
		}
	}
}
