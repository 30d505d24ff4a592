package targets

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// fuzzResolve fails names starting with "x" and puts the others in
// 100.64.0.0/10.
func fuzzResolve(_ context.Context, host string) (netip.Addr, error) {
	if strings.HasPrefix(host, "x") {
		return netip.Addr{}, errors.New("no such host")
	}
	h := fnv.New32a()
	h.Write([]byte(host))
	return u32(0x64400000 | h.Sum32()&0x3fffff).addr(), nil
}

var fuzzExclude = prefixes("10.1.0.0/16", "100.64.0.0/12", "192.0.2.128/25", "2001:db8::80/121")

// FuzzParseFile checks that no file makes the Builder panic, and that an
// accepted one gives a sorted set of distinct, routable, not excluded
// addresses: those of a plain reference expansion when it is small.
func FuzzParseFile(f *testing.F) {
	for _, seed := range []string{
		"10.0.0.1\n10.0.0.0/30 # four\n\n# comment\nhost.example\n",
		"192.0.2.0/24\n192.0.2.7\n127.0.0.1\n127.0.0.0/30\n223.255.255.0/24\n",
		"10.0.0.1/24\n224.0.0.1\nxbad.example\n2001:db8::1\n10.0.0.0/33\n",
		"2001:db8::/120\n2001:db8::5\nfd00::1\n::1\n::/126\n2001:db8::ffff:0/112\n",
		"ff02::/120\n::ffff:1.2.3.4\n2001:db8:1::/126\n2001:db8::1/64\n10.0.0.1\n",
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, skip bool) {
		b := NewBuilder(Options{SkipInvalid: skip, Exclude: fuzzExclude, Resolve: fuzzResolve})
		if err := b.AddFile(context.Background(), bytes.NewReader(data), "f"); err != nil {
			if !errors.Is(err, bufio.ErrTooLong) {
				t.Fatalf("AddFile: %v", err)
			}
			return
		}
		s, err := b.Build()
		if err != nil {
			var ie *InvalidError
			var me *MixedError
			if !errors.As(err, &ie) && !errors.As(err, &me) && !strings.HasPrefix(err.Error(), "no destination") {
				t.Fatalf("Build: %v", err)
			}
			return
		}
		n := s.Len()
		if n == 0 {
			t.Fatal("empty set accepted")
		}
		st := s.Stats()
		if skip && st.Invalid > st.Entries || !skip && st.Invalid != 0 {
			t.Fatalf("stats %+v", st)
		}

		// Sample indices in increasing order: the addresses must increase.
		step := max(n/1024, 1)
		var prev netip.Addr
		for i := uint64(0); i < n; i += step {
			checkAt(t, s, i, prev)
			prev = s.At(i)
		}
		checkAt(t, s, n-1, netip.Addr{})

		if !skip {
			if want, ok := reference(t, data); ok {
				var got []netip.Addr
				for i := range n {
					got = append(got, s.At(i))
				}
				if !slices.Equal(got, want) {
					t.Fatalf("set of %d addresses, want %d: %v, want %v", len(got), len(want), got, want)
				}
			}
		}
	})
}

// checkAt checks the address of index i, which must come after prev.
func checkAt(t *testing.T, s *Set, i uint64, prev netip.Addr) {
	t.Helper()
	a := s.At(i)
	switch {
	case a.Is4() == s.Is6() || a.Is4In6() || a.Zone() != "":
		t.Fatalf("At(%d) = %v in a set with Is6 %v", i, a, s.Is6())
	case prev.IsValid() && a.Compare(prev) <= 0:
		t.Fatalf("At(%d) = %v after %v", i, a, prev)
	case !s.Contains(a):
		t.Fatalf("At(%d) = %v not contained", i, a)
	case neverRoutable(a) != "":
		t.Fatalf("At(%d) = %v is never routable", i, a)
	}
	for _, p := range fuzzExclude {
		if p.Contains(a) {
			t.Fatalf("At(%d) = %v is excluded by %v", i, a, p)
		}
	}
}

// reference lists, sorted, the addresses of a file whose every line is
// valid, by expanding each prefix; ok is false if that would be long.
func reference(t *testing.T, data []byte) (addrs []netip.Addr, ok bool) {
	seen := map[netip.Addr]bool{}
	keep := func(a netip.Addr) {
		for _, p := range fuzzExclude {
			if p.Contains(a) {
				return
			}
		}
		seen[a] = true
	}
	budget := 1 << 14
	for line := range strings.Lines(string(data)) {
		line, _, _ = strings.Cut(line, "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.Contains(line, "/") {
			p, err := netip.ParsePrefix(line)
			if err != nil || p.Addr().Is4In6() || p.Masked() != p {
				t.Fatalf("accepted %q", line)
			}
			if p.Addr().Is6() {
				if 128-p.Bits() > 14 {
					return nil, false
				}
				if budget -= 1 << (128 - p.Bits()); budget < 0 {
					return nil, false
				}
				for a := p.Addr(); p.Contains(a); a = a.Next() {
					if p.Bits() <= 126 && a == p.Addr() || neverRoutable(a) != "" || a == netip.IPv6Loopback() {
						continue
					}
					keep(a)
				}
				continue
			}
			if budget -= 1 << (32 - p.Bits()); budget < 0 {
				return nil, false
			}
			first, last := p.Addr(), netip.Addr{}
			for a := first; p.Contains(a); a = a.Next() {
				last = a
			}
			for a := first; p.Contains(a); a = a.Next() {
				if p.Bits() <= 30 && (a == first || a == last) {
					continue
				}
				if b := a.As4(); b[0] == 0 || b[0] == 127 || b[0] >= 224 {
					continue
				}
				keep(a)
			}
			continue
		}
		a, err := netip.ParseAddr(line)
		if err != nil {
			if a, err = fuzzResolve(context.Background(), line); err != nil {
				t.Fatalf("accepted %q", line)
			}
		}
		keep(a)
	}
	for a := range seen {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	return addrs, true
}
