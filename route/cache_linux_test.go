package route

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/internal/netnstest"
)

// The route cache lab: namespace a (the prober) joined to r, which holds
// the gateways 10.77.1.2, .3 and .4 (10.77.1.9 is silent), with in a:
//
//	10.80.0.0/16     via .2
//	10.80.5.64/26    via .3           (splits 10.80.5.0/24)
//	rule to 10.80.7.16/28 -> table 100: 10.80.0.0/16 via .4
//	                                  (splits 10.80.7.0/24)
//	10.81.0.0/16     via .2 and .3    (multipath: hashed per destination)
//	prohibit 10.82.0.0/16
//	10.83.0.0/16     via .9           (unresolvable next hop)
//	10.99.0.0/16     nothing
func newCacheLab(tb testing.TB) *netnstest.Set {
	tb.Helper()
	s := netnstest.New(tb, "r", "a", "r")
	s.Veth("a", "va", "02:74:66:00:0c:01", "10.77.1.1/24", "r", "ra", "02:74:66:00:0c:02", "10.77.1.2/24")
	for _, gw := range []string{"10.77.1.3/24", "10.77.1.4/24"} {
		s.NSIP("r", "addr", "add", gw, "dev", "ra")
	}
	s.NSIP("a", "addr", "add", "10.77.9.1/32", "dev", "lo")
	for _, r := range [][]string{
		{"10.80.0.0/16", "via", "10.77.1.2"},
		{"10.80.5.64/26", "via", "10.77.1.3"},
		{"10.80.0.0/16", "via", "10.77.1.4", "table", "100"},
		{"10.81.0.0/16", "nexthop", "via", "10.77.1.2", "nexthop", "via", "10.77.1.3"},
		{"prohibit", "10.82.0.0/16"},
		{"10.83.0.0/16", "via", "10.77.1.9"},
	} {
		s.NSIP("a", append([]string{"route", "add"}, r...)...)
	}
	s.NSIP("a", "rule", "add", "to", "10.80.7.16/28", "table", "100", "pref", "100")
	return s
}

// newLabCache builds the lab and a cache with opts in its namespace a,
// closed when the test ends.
func newLabCache(tb testing.TB, opts Options) (*netnstest.Set, *Cache) {
	tb.Helper()
	s := newCacheLab(tb)
	var c *Cache
	s.In(tb, "a", func() (err error) {
		c, err = NewCache(context.Background(), opts)
		return err
	})
	tb.Cleanup(func() { c.Close() })
	return s, c
}

func addrRange(prefix string, n int) []netip.Addr {
	a := netip.MustParsePrefix(prefix).Addr()
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = a
		a = a.Next()
	}
	return out
}

// namesDst reports whether msg holds dst as a whole address.
func namesDst(msg string, dst netip.Addr) bool {
	s := dst.String()
	for i := 0; ; {
		j := strings.Index(msg[i:], s)
		if j < 0 {
			return false
		}
		end := i + j + len(s)
		if end == len(msg) || (msg[end] != '.' && (msg[end] < '0' || msg[end] > '9')) {
			return true
		}
		i = end
	}
}

// agree checks the cache's answer for dst against Lookup's.
func agree(t *testing.T, dst netip.Addr, rt *Route, err error, want *Route, wantErr error) {
	t.Helper()
	switch {
	case wantErr != nil:
		// The cache adds the destination where Lookup names only the
		// next hop, and the neighbour state in parentheses may differ.
		w, _, _ := strings.Cut(wantErr.Error(), " (")
		if err == nil || !strings.Contains(err.Error(), w) || !namesDst(err.Error(), dst) {
			t.Errorf("%s: cache gave %v, %v; Lookup %v", dst, rt, err, wantErr)
		}
	case err != nil:
		t.Errorf("%s: cache gave %v; Lookup %+v", dst, err, *want)
	case rt.Ifindex != want.Ifindex || rt.IfName != want.IfName || rt.Src != want.Src ||
		rt.NextHop != want.NextHop || rt.HWAddr.String() != want.HWAddr.String() || rt.MTU != want.MTU:
		t.Errorf("%s: cache gave %+v; Lookup %+v", dst, *rt, *want)
	}
}

// cacheCase is a range of destinations and what the cache must cost for it.
type cacheCase struct {
	name    string
	dsts    []netip.Addr
	compare func(i int) bool // which addresses to check against Lookup
	lookups int64            // kernel lookups for the whole range, from cold
}

func cacheCases() []cacheCase {
	every := func(n int) func(int) bool { return func(i int) bool { return i%n == 0 } }
	all := func(int) bool { return true }
	return []cacheCase{
		// 14 /24s shared; the 256 addresses of 10.80.5/24 and of
		// 10.80.7/24 alone. Every address of those two is compared, and
		// every 13th elsewhere.
		{"route /16, /26 and rule /28", addrRange("10.80.0.0/20", 4096), func(i int) bool {
			return i>>8 == 5 || i>>8 == 7 || i%13 == 0
		}, 14 + 2*256},
		{"multipath", addrRange("10.81.0.0/24", 256), all, 256},
		{"prohibited", addrRange("10.82.0.0/20", 4096), every(97), 16},
		{"no route", addrRange("10.99.0.0/20", 4096), every(97), 16},
		{"silent gateway", addrRange("10.83.0.0/20", 4096), every(2000), 16},
		{"on-link, local and broadcast", []netip.Addr{
			netip.MustParseAddr("10.77.1.2"), netip.MustParseAddr("10.77.1.3"), netip.MustParseAddr("10.77.1.4"),
			netip.MustParseAddr("10.77.1.1"), netip.MustParseAddr("10.77.1.255"),
		}, all, 5},
	}
}

// checkCacheCase looks the destinations of tc up in c, from namespace a of
// s, checks them against Lookup and counts the kernel lookups they cost;
// byHop collects the routes by next hop, which must be interned.
func checkCacheCase(ctx context.Context, t *testing.T, s *netnstest.Set, c *Cache, tc cacheCase, byHop map[netip.Addr]*Route) {
	t.Helper()
	before := c.lookups.Load()
	s.In(t, "a", func() error {
		for i, dst := range tc.dsts {
			rt, err := c.Lookup(ctx, dst)
			if err == nil {
				if p, ok := byHop[rt.NextHop]; ok && p != rt {
					t.Errorf("%s: route via %s is %p; an earlier one was %p", dst, rt.NextHop, rt, p)
				}
				byHop[rt.NextHop] = rt
			} else if !namesDst(err.Error(), dst) {
				t.Errorf("%s: error %q does not name the destination", dst, err)
			}
			if !tc.compare(i) {
				continue
			}
			lctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			want, wantErr := Lookup(lctx, dst, Options{})
			cancel()
			agree(t, dst, rt, err, want, wantErr)
		}
		return nil
	})
	if n := c.lookups.Load() - before; n != tc.lookups {
		t.Errorf("%d kernel lookups for %d destinations; want %d", n, len(tc.dsts), tc.lookups)
	}
	// Everything, errors included, is cached now.
	before = c.lookups.Load()
	for _, dst := range tc.dsts {
		_, _ = c.Lookup(ctx, dst)
	}
	if n := c.lookups.Load() - before; n != 0 {
		t.Errorf("%d kernel lookups for destinations already looked up", n)
	}
}

// checkRouteAdded checks that a route longer than /24 added after the dump
// is still seen when the first address of its /24 falls in it: the FIB
// entry matched is a /25.
func checkRouteAdded(ctx context.Context, t *testing.T, s *netnstest.Set, c *Cache) {
	t.Helper()
	s.NSIP("a", "route", "add", "10.84.0.0/16", "via", "10.77.1.2")
	s.NSIP("a", "route", "add", "10.84.1.0/25", "via", "10.77.1.3")
	before := c.lookups.Load()
	s.In(t, "a", func() error {
		for _, dst := range addrRange("10.84.1.0/24", 256) {
			rt, err := c.Lookup(ctx, dst)
			want, wantErr := Lookup(ctx, dst, Options{})
			agree(t, dst, rt, err, want, wantErr)
		}
		return nil
	})
	if n := c.lookups.Load() - before; n != 256 {
		t.Errorf("%d kernel lookups; want 256", n)
	}
}

func TestCache(t *testing.T) {
	s, c := newLabCache(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	byHop := map[netip.Addr]*Route{}
	total := 0
	for _, tc := range cacheCases() {
		t.Run(tc.name, func(t *testing.T) { checkCacheCase(ctx, t, s, c, tc, byHop) })
		total += len(tc.dsts)
	}
	t.Logf("%d destinations, %d kernel lookups, %d next hops resolved", total, c.lookups.Load(), c.resolutions.Load())
	if len(byHop) != 3 {
		t.Errorf("routes via %d next hops; want 3 (.2, .3, .4)", len(byHop))
	}
	// .2, .3, .4 and the silent .9, whether reached by a route or on-link.
	if n := c.resolutions.Load(); n != 4 {
		t.Errorf("%d next-hop resolutions; want 4", n)
	}

	t.Run("multipath spreads a /24", func(t *testing.T) {
		hops := map[netip.Addr]bool{}
		for _, dst := range addrRange("10.81.0.0/24", 256) {
			if rt, err := c.Lookup(ctx, dst); err == nil {
				hops[rt.NextHop] = true
			}
		}
		if len(hops) != 2 {
			t.Errorf("10.81.0.0/24 reached through %d next hops; want both (sharing would have been wrong)", len(hops))
		}
	})

	t.Run("route added after the dump", func(t *testing.T) { checkRouteAdded(ctx, t, s, c) })

	t.Run("mapped and IPv6", func(t *testing.T) {
		rt, err := c.Lookup(ctx, netip.MustParseAddr("::ffff:10.80.1.1"))
		if err != nil || rt != byHop[netip.MustParseAddr("10.77.1.2")] {
			t.Errorf("IPv4-mapped destination: %v, %v", rt, err)
		}
		// This lab has no IPv6 route.
		if _, err := c.Lookup(ctx, netip.MustParseAddr("2001:db8::1")); err == nil || !strings.Contains(err.Error(), "no route to 2001:db8::1") {
			t.Errorf("IPv6 destination: %v", err)
		}
	})

	t.Run("no allocation", func(t *testing.T) {
		dsts := addrRange("10.80.0.0/20", 4096) // shared and per-address answers
		i := 0
		allocs := testing.AllocsPerRun(10000, func() {
			if _, err := c.Lookup(ctx, dsts[i%len(dsts)]); err != nil {
				t.Fatal(err)
			}
			i += 7
		})
		if allocs != 0 {
			t.Errorf("cached Lookup: %v allocations; want 0", allocs)
		}
	})

	t.Run("closed", func(t *testing.T) {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Lookup(ctx, netip.MustParseAddr("10.80.1.1")); err == nil || !strings.Contains(err.Error(), "closed") {
			t.Errorf("Lookup after Close: %v", err)
		}
	})
}

// TestCacheConcurrent looks every destination up from 8 goroutines at
// once, in different orders: each must still cost one kernel lookup, and
// each next hop one resolution.
func TestCacheConcurrent(t *testing.T) {
	_, c := newLabCache(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var dsts []netip.Addr
	var want int64
	for _, tc := range cacheCases() {
		dsts = append(dsts, tc.dsts...)
		want += tc.lookups
	}
	const workers = 8
	got := make([][]*Route, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			got[w] = make([]*Route, len(dsts))
			for _, i := range rand.New(rand.NewPCG(uint64(w), 1)).Perm(len(dsts)) {
				var err error
				if got[w][i], err = c.Lookup(ctx, dsts[i]); err != nil && !namesDst(err.Error(), dsts[i]) {
					t.Errorf("%s: %v", dsts[i], err)
				}
			}
		})
	}
	wg.Wait()
	for w := 1; w < workers; w++ {
		for i := range dsts {
			if got[w][i] != got[0][i] {
				t.Fatalf("%s: worker %d got %v, worker 0 %v", dsts[i], w, got[w][i], got[0][i])
			}
		}
	}
	if n := c.lookups.Load(); n != want {
		t.Errorf("%d kernel lookups; want %d", n, want)
	}
	if n := c.resolutions.Load(); n != 4 {
		t.Errorf("%d next-hop resolutions; want 4", n)
	}
}

func TestCacheOptions(t *testing.T) {
	s := newCacheLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src := netip.MustParseAddr("10.77.9.1")
	opts := Options{Interface: "va", Source: src}
	s.In(t, "a", func() error {
		c, err := NewCache(ctx, opts)
		if err != nil {
			return err
		}
		defer c.Close()
		for _, dst := range append(addrRange("10.80.0.0/22", 1024), addrRange("10.80.5.60/32", 10)...) {
			rt, err := c.Lookup(ctx, dst)
			want, wantErr := Lookup(ctx, dst, opts)
			agree(t, dst, rt, err, want, wantErr)
			if err == nil && (rt.Src != src || rt.IfName != "va") {
				t.Errorf("%s: %+v; want source %s on va", dst, *rt, src)
			}
		}
		if n := c.lookups.Load(); n != 4+10 {
			t.Errorf("%d kernel lookups; want 14", n)
		}
		for _, tt := range []struct {
			opts Options
			want string
		}{
			{Options{Interface: "eth9"}, "interface eth9 not found"},
			{Options{Source: netip.MustParseAddr("1.2.3.4")}, "source 1.2.3.4 is not an address of this host"},
			{Options{Source: netip.MustParseAddr("2001:db8::1")}, "source 2001:db8::1 is not an address of this host"},
			{Options{Source: netip.MustParseAddr("fe80::1%va")}, "a zone"},
		} {
			if c, err := NewCache(ctx, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
				if c != nil {
					c.Close()
				}
				t.Errorf("NewCache(%+v): %v; want %q", tt.opts, err, tt.want)
			}
		}
		return nil
	})
}

// TestCacheLongPrefixes checks what the dump finds: the /24s of the
// /26 route, the /28 rule and the local and broadcast /32s of the local
// table (lo's among them), and nothing for prefixes of /24 or shorter.
func TestCacheLongPrefixes(t *testing.T) {
	_, c := newLabCache(t, Options{})
	var got []string
	for _, b := range c.long {
		got = append(got, fmt.Sprintf("%d.%d.%d.0/24", b>>16, b>>8&0xff, b&0xff))
	}
	want := "10.77.1.0/24 10.77.9.0/24 10.80.5.0/24 10.80.7.0/24 127.0.0.0/24 127.255.255.0/24"
	if g := strings.Join(got, " "); g != want {
		t.Errorf("split /24s %s; want %s", g, want)
	}
}

// BenchmarkCacheLookup measures a warm cache: 4096 addresses of a /20
// whose answers are all cached (shared per /24, or per address in the /24s
// that the /26 route and the /28 rule split).
func BenchmarkCacheLookup(b *testing.B) {
	_, c := newLabCache(b, Options{})
	ctx := context.Background()
	dsts := addrRange("10.80.0.0/20", 4096)
	for _, d := range dsts {
		if _, err := c.Lookup(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := c.Lookup(ctx, dsts[i&4095]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCacheCold looks up 4096 addresses of 10.80.0.0/20 from
// nothing: a new cache (with its dump of routes and rules) per iteration,
// against as many calls of Lookup. The neighbour table of the kernel
// is warm in both.
func BenchmarkCacheCold(b *testing.B) {
	s := newCacheLab(b)
	dsts := addrRange("10.80.0.0/20", 4096)
	ctx := context.Background()
	b.Run("Cache", func(b *testing.B) {
		var lookups int64
		s.In(b, "a", func() error {
			for b.Loop() {
				c, err := NewCache(ctx, Options{})
				if err != nil {
					return err
				}
				for _, d := range dsts {
					if _, err := c.Lookup(ctx, d); err != nil {
						return err
					}
				}
				lookups += c.lookups.Load()
				c.Close()
			}
			return nil
		})
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(dsts)), "ns/addr")
		b.ReportMetric(float64(lookups)/float64(b.N), "kernel-lookups/op")
	})
	b.Run("Lookup", func(b *testing.B) {
		s.In(b, "a", func() error {
			for b.Loop() {
				for _, d := range dsts {
					if _, err := Lookup(ctx, d, Options{}); err != nil {
						return err
					}
				}
			}
			return nil
		})
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(dsts)), "ns/addr")
	})
}
