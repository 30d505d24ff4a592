package route

import (
	"context"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/internal/netnstest"
)

// newCacheLab6 builds the IPv6 routes of the cache tests: from a
// (fd77:1::1) through r's fd77:1::2 and fd77:1::3,
//
//	fd77::/16        via ::2          (shared by /64)
//	fd77:5::/120     via ::3          (splits fd77:5::/64)
//	fd77:6::/64      via ::2 and ::3  (multipath: hashed per destination)
//	prohibit fd77:7::/64
//	2001:db8::/32    nothing
func newCacheLab6(tb testing.TB) *netnstest.Set {
	tb.Helper()
	s := netnstest.New(tb, "r", "a", "r")
	for _, n := range []string{"a", "r"} {
		s.Exec(n, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	}
	s.Veth("a", "va", "02:74:66:00:0c:01", "10.77.1.1/24", "r", "ra", "02:74:66:00:0c:02", "10.77.1.2/24")
	s.AddAddr6("a", "va", "fd77:1::1/64")
	for _, gw := range []string{"fd77:1::2/64", "fd77:1::3/64"} {
		s.AddAddr6("r", "ra", gw)
	}
	for _, r := range [][]string{
		{"fd77::/16", "via", "fd77:1::2"},
		{"fd77:5::/120", "via", "fd77:1::3"},
		{"fd77:6::/64", "nexthop", "via", "fd77:1::2", "nexthop", "via", "fd77:1::3"},
		{"prohibit", "fd77:7::/64"},
	} {
		s.NSIP("a", append([]string{"-6", "route", "add"}, r...)...)
	}
	return s
}

// checkCacheCase6 is checkCacheCase for IPv6 destinations; byHop collects
// the routes through a gateway only.
func checkCacheCase6(ctx context.Context, t *testing.T, s *netnstest.Set, c *Cache, tc cacheCase, byHop map[netip.Addr]*Route) {
	t.Helper()
	before := c.lookups.Load()
	s.In(t, "a", func() error {
		for i, dst := range tc.dsts {
			rt, err := c.Lookup(ctx, dst)
			if err == nil && rt.NextHop != dst {
				if p, ok := byHop[rt.NextHop]; ok && p != rt {
					t.Errorf("%s: route via %s is %p; an earlier one was %p", dst, rt.NextHop, rt, p)
				}
				byHop[rt.NextHop] = rt
			} else if err != nil && !strings.Contains(err.Error(), dst.String()) {
				t.Errorf("%s: error %q does not name the destination", dst, err)
			}
			if !tc.compare(i) {
				continue
			}
			want, wantErr := Lookup(ctx, dst, Options{})
			agree(t, dst, rt, err, want, wantErr)
		}
		return nil
	})
	if n := c.lookups.Load() - before; n != tc.lookups {
		t.Errorf("%d kernel lookups for %d destinations; want %d", n, len(tc.dsts), tc.lookups)
	}
	before = c.lookups.Load()
	for _, dst := range tc.dsts {
		_, _ = c.Lookup(ctx, dst)
	}
	if n := c.lookups.Load() - before; n != 0 {
		t.Errorf("%d kernel lookups for destinations already looked up", n)
	}
}

func TestCache6(t *testing.T) {
	s := newCacheLab6(t)
	var c *Cache
	s.In(t, "a", func() (err error) {
		c, err = NewCache(context.Background(), Options{})
		return err
	})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	every := func(n int) func(int) bool { return func(i int) bool { return i%n == 0 } }
	all := func(int) bool { return true }
	byHop := map[netip.Addr]*Route{}
	for _, tc := range []cacheCase{
		{"route /16, shared by /64", slices.Concat(addrRange("fd77:2::/64", 300), addrRange("fd77:3::/64", 300)), every(7), 2},
		{"/120 splits its /64", addrRange("fd77:5::/64", 512), all, 512},
		{"multipath", addrRange("fd77:6::/64", 128), all, 128},
		{"prohibited", addrRange("fd77:7::/64", 100), every(33), 1},
		{"no route", addrRange("2001:db8::/64", 100), every(33), 1},
		{"on-link and local", []netip.Addr{
			netip.MustParseAddr("fd77:1::2"), netip.MustParseAddr("fd77:1::3"), netip.MustParseAddr("fd77:1::1"),
		}, all, 3},
	} {
		t.Run(tc.name, func(t *testing.T) { checkCacheCase6(ctx, t, s, c, tc, byHop) })
	}
	t.Run("multipath spreads a /64", func(t *testing.T) {
		hops := map[netip.Addr]bool{}
		for _, dst := range addrRange("fd77:6::/64", 128) {
			if rt, err := c.Lookup(ctx, dst); err == nil {
				hops[rt.NextHop] = true
			}
		}
		if len(hops) != 2 {
			t.Errorf("fd77:6::/64 reached through %d next hops; want both", len(hops))
		}
	})
	t.Run("split /64s", func(t *testing.T) {
		var got []string
		for _, k := range c.long6 {
			var b [16]byte
			binary.BigEndian.PutUint64(b[:8], k)
			got = append(got, netip.PrefixFrom(netip.AddrFrom16(b), 64).String())
		}
		// fd77:5::/120, and the local /128 of fd77:1::1.
		for _, want := range []string{"fd77:1::/64", "fd77:5::/64"} {
			if !slices.Contains(got, want) {
				t.Errorf("split /64s %v lack %s", got, want)
			}
		}
		for _, not := range []string{"fd77:2::/64", "fd77:6::/64", "fd77:7::/64"} {
			if slices.Contains(got, not) {
				t.Errorf("split /64s %v hold %s", got, not)
			}
		}
	})
	t.Run("IPv4 and IPv6 in one cache", func(t *testing.T) {
		if rt, err := c.Lookup(ctx, netip.MustParseAddr("10.77.1.2")); err != nil || rt.NextHop.Is6() {
			t.Errorf("IPv4 on-link: %v, %v", rt, err)
		}
	})
	t.Run("no allocation", func(t *testing.T) {
		dsts := addrRange("fd77:5::/64", 512)
		i := 0
		allocs := testing.AllocsPerRun(5000, func() {
			if _, err := c.Lookup(ctx, dsts[i%len(dsts)]); err != nil {
				t.Fatal(err)
			}
			i += 7
		})
		if allocs != 0 {
			t.Errorf("%v allocations per cached lookup", allocs)
		}
	})
}

// A source override of one family: the cache refuses the other's
// destinations, naming both.
func TestCache6Source(t *testing.T) {
	s := newCacheLab6(t)
	var c *Cache
	s.In(t, "a", func() (err error) {
		c, err = NewCache(context.Background(), Options{Source: netip.MustParseAddr("fd77:1::1")})
		return err
	})
	defer c.Close()
	ctx := context.Background()
	if rt, err := c.Lookup(ctx, netip.MustParseAddr("fd77:2::9")); err != nil || rt.Src != netip.MustParseAddr("fd77:1::1") {
		t.Errorf("IPv6 destination: %v, %v", rt, err)
	}
	if _, err := c.Lookup(ctx, netip.MustParseAddr("10.77.1.2")); err == nil || !strings.Contains(err.Error(), "source fd77:1::1 is not an IPv4 address") {
		t.Errorf("IPv4 destination with an IPv6 source: %v", err)
	}
}
