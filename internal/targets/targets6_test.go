package targets

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// addrRange6 returns the n addresses from from on as text.
func addrRange6(from string, n int) []string {
	var out []string
	a := netip.MustParseAddr(from)
	for range n {
		out = append(out, a.String())
		a = a.Next()
	}
	return out
}

func TestBuild6(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  Options
		file  string
		args  []string
		want  []string
		stats Stats
	}{
		{
			name:  "addresses, sorted and deduplicated",
			file:  "2001:db8::9\n2001:db8::1 # one\n\n2001:DB8::1\nfd00::1\n",
			want:  []string{"2001:db8::1", "2001:db8::9", "fd00::1"},
			stats: Stats{Entries: 4, Duplicates: 1},
		},
		{
			name:  "/126 drops the subnet-router anycast address",
			file:  "2001:db8::/126",
			want:  []string{"2001:db8::1", "2001:db8::2", "2001:db8::3"},
			stats: Stats{Entries: 1},
		},
		{
			name:  "/127 keeps both",
			file:  "2001:db8::4/127",
			want:  []string{"2001:db8::4", "2001:db8::5"},
			stats: Stats{Entries: 1},
		},
		{
			name:  "/128",
			file:  "2001:db8::4/128",
			want:  []string{"2001:db8::4"},
			stats: Stats{Entries: 1},
		},
		{
			name:  "ranges across a 64-bit boundary",
			file:  "2001:db8:0:1:ffff:ffff:ffff:fffc/126\n2001:db8:0:2::/127\n",
			want:  cat(addrRange6("2001:db8:0:1:ffff:ffff:ffff:fffd", 3), []string{"2001:db8:0:2::", "2001:db8:0:2::1"}),
			stats: Stats{Entries: 2},
		},
		{
			name:  "exclude, IPv4 prefixes ignored",
			opts:  Options{Exclude: prefixes("2001:db8::8/125", "2001:db8::3/128", "10.0.0.0/8")},
			file:  "2001:db8::/124\n2001:db8::9\n",
			want:  cat(addrRange6("2001:db8::1", 2), addrRange6("2001:db8::4", 4)),
			stats: Stats{Entries: 2, Duplicates: 1, Excluded: 8 + 1},
		},
		{
			name:  "explicit loopback is allowed",
			file:  "::1\n",
			want:  []string{"::1"},
			stats: Stats{Entries: 1},
		},
		{
			name:  "unspecified and loopback dropped from a prefix",
			file:  "::/126\n",
			want:  []string{"::2", "::3"},
			stats: Stats{Entries: 1, Unroutable: 1},
		},
		{
			name:  "multicast and mapped prefixes are unroutable",
			file:  "ff02::/120\nfd00::1\n",
			want:  []string{"fd00::1"},
			stats: Stats{Entries: 2, Unroutable: 255},
		},
		{
			name:  "hostnames with IPv6",
			opts:  Options{IPv6: true},
			file:  "v6.example\n2001:db8::1\n",
			args:  []string{"v6.example"},
			want:  []string{"2001:db8::1"},
			stats: Stats{Entries: 3, Duplicates: 2},
		},
		{
			name:  "a prefix up to --max-prefix",
			opts:  Options{MaxPrefix: 1 << 20},
			file:  "2001:db8::/108\n",
			want:  nil,
			stats: Stats{Entries: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := build(t, tc.opts, tc.file, tc.args...)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			if !s.Is6() {
				t.Error("Is6 false")
			}
			if tc.want != nil {
				if got := all(s); !slices.Equal(got, tc.want) {
					t.Errorf("addresses %v, want %v", got, tc.want)
				}
				for _, a := range tc.want {
					if !s.Contains(netip.MustParseAddr(a)) {
						t.Errorf("Contains(%s) = false", a)
					}
				}
			}
			if got := s.Stats(); got != tc.stats {
				t.Errorf("stats %+v, want %+v", got, tc.stats)
			}
		})
	}
}

func TestLarge6(t *testing.T) {
	s, err := build(t, Options{MaxPrefix: 1 << 20}, "2001:db8::/108\n2001:db8:1::/108\n")
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Len(); n != 2*(1<<20-1) {
		t.Fatalf("Len %d", n)
	}
	for i, want := range map[uint64]string{
		0: "2001:db8::1", 1<<20 - 2: "2001:db8::f:ffff", 1<<20 - 1: "2001:db8:1::1", 2*(1<<20-1) - 1: "2001:db8:1::f:ffff",
	} {
		if got := s.At(i).String(); got != want {
			t.Errorf("At(%d) = %s, want %s", i, got, want)
		}
	}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"2001:db8::", false}, {"2001:db8::1", true}, {"2001:db8::10:0", false}, {"2001:db8:1::5", true},
		{"2001:db8:2::1", false}, {"10.0.0.1", false}, {"::ffff:10.0.0.1", false},
	} {
		if got := s.Contains(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Contains(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	// The order visits every address once.
	perm := NewPermutation(s.Len(), 7)
	seen := make(map[netip.Addr]bool, s.Len())
	for i, ok := perm.Next(); ok; i, ok = perm.Next() {
		seen[s.At(i)] = true
	}
	if uint64(len(seen)) != s.Len() {
		t.Errorf("%d distinct addresses visited of %d", len(seen), s.Len())
	}
}

func TestMixedFamilies(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		args []string
		want string
	}{
		{
			name: "arguments",
			args: []string{"10.0.0.1", "10.0.0.2", "2001:db8::1", "2001:db8::2"},
			want: `argument "2001:db8::1": 2001:db8::1 is IPv6, but argument "10.0.0.1": 10.0.0.1 is IPv4: a run traces one address family; trace them in separate runs`,
		},
		{
			name: "IPv6 first",
			file: "# v6\n2001:db8::/126\n10.0.0.0/30\n192.0.2.1\n",
			want: `t.txt:3: 10.0.0.0/30 is IPv4, but t.txt:2: 2001:db8::/126 is IPv6: a run traces one address family; trace them in separate runs`,
		},
		{
			name: "a hostname before the first IPv6 line",
			file: "c.example\n2001:db8::1\n",
			want: `t.txt:2: 2001:db8::1 is IPv6, but t.txt:1: c.example (198.51.100.7) is IPv4: a run traces one address family; trace them in separate runs`,
		},
		{
			name: "file after arguments",
			args: []string{"fd00::1"},
			file: "2001:db8::1\n\n10.0.0.1\n",
			want: `t.txt:3: 10.0.0.1 is IPv4, but argument "fd00::1": fd00::1 is IPv6: a run traces one address family; trace them in separate runs`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := build(t, Options{}, tc.file, tc.args...)
			var me *MixedError
			if !errors.As(err, &me) || err.Error() != tc.want {
				t.Errorf("error\n%v\nwant\n%s", err, tc.want)
			}
		})
	}
	// Invalid entries are reported first; skipped ones do not count.
	_, err := build(t, Options{}, "10.0.0.1\n2001:db8::/32\n")
	var ie *InvalidError
	if !errors.As(err, &ie) {
		t.Errorf("error %v, want an *InvalidError", err)
	}
	s, err := build(t, Options{SkipInvalid: true}, "10.0.0.1\n2001:db8::/32\n")
	if err != nil || s.Is6() || s.Len() != 1 {
		t.Errorf("skipping the invalid IPv6 prefix: %v, %v", s, err)
	}
}

func TestIPv6Option(t *testing.T) {
	opts := Options{IPv6: true}
	for _, tc := range []struct{ line, want string }{
		{"10.0.0.1", `10.0.0.1 is IPv4, but -6 asks for IPv6 destinations`},
		{"10.0.0.0/30", `10.0.0.0/30 is IPv4, but -6 asks for IPv6 destinations`},
		{"c.example", `"c.example" resolved to 198.51.100.7, not an IPv6 address`},
		{"nx.example", `cannot resolve "nx.example" to an IPv6 address: no such host`},
	} {
		_, err := build(t, opts, "2001:db8::1\n"+tc.line+"\n")
		if got, want := fmt.Sprint(err), "t.txt:2: "+tc.want; got != want {
			t.Errorf("error\n%s\nwant\n%s", got, want)
		}
	}
	// A resolver may give a zone or a mapped address: neither is kept.
	resolve := func(_ context.Context, host string) (netip.Addr, error) {
		if strings.HasPrefix(host, "ll") {
			return netip.MustParseAddr("fd00::7%eth0"), nil
		}
		return netip.MustParseAddr("::ffff:192.0.2.1"), nil
	}
	s, err := build(t, Options{IPv6: true, Resolve: resolve}, "", "ll.example")
	if err != nil || all(s)[0] != "fd00::7" || s.Name(netip.MustParseAddr("fd00::7")) != "ll.example" {
		t.Errorf("zoned answer: %v, %v", s, err)
	}
	if _, err := build(t, Options{IPv6: true, Resolve: resolve}, "", "m.example"); err == nil ||
		!strings.Contains(err.Error(), "not an IPv6 address") {
		t.Errorf("mapped answer: %v", err)
	}
}

func TestParseExclude6(t *testing.T) {
	got, err := ParseExclude(strings.NewReader("2001:db8::/32\nfd00::1\n::/0\n"), "ex.conf")
	want := prefixes("2001:db8::/32", "fd00::1/128", "::/0")
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
	s, err := build(t, Options{Exclude: got}, "", "10.0.0.1")
	if err != nil || s.Len() != 1 {
		t.Errorf("an IPv6 exclusion of everything leaves IPv4 alone: %v, %v", s, err)
	}
	if _, err := build(t, Options{Exclude: got}, "", "2001:db9::1"); err == nil || err.Error() != "no destination left: 1 excluded" {
		t.Errorf("::/0 excluded: %v", err)
	}
	if _, err := ParseExclude(strings.NewReader("fe80::1%eth0\n"), "ex.conf"); fmt.Sprint(err) != "ex.conf:1: fe80::1%eth0 has a zone" {
		t.Errorf("zone: %v", err)
	}
}
