package analysis

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

func addrRange(t *testing.T, first, last string) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	for a, end := netip.MustParseAddr(first), netip.MustParseAddr(last); a.Compare(end) <= 0; a = a.Next() {
		out = append(out, a)
	}
	return out
}

func prefixes(ss ...string) []netip.Prefix {
	out := []netip.Prefix{}
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestCoverPrefixes(t *testing.T) {
	// The hosts of a /20 (network and broadcast addresses not traced).
	hosts := addrRange(t, "10.21.0.1", "10.21.15.254")
	one := make([]int, len(hosts))
	if got := CoverPrefixes(hosts, one, 1); !slices.Equal(got[0], prefixes("10.21.0.0/20")) {
		t.Errorf("the hosts of a /20: %v", got)
	}

	// One address of another class inside a /24: the rest is covered by
	// the 8 largest prefixes around it.
	hosts = addrRange(t, "10.0.0.1", "10.0.0.254")
	class := make([]int, len(hosts))
	class[76] = 1 // 10.0.0.77
	got := CoverPrefixes(hosts, class, 2)
	want := prefixes("10.0.0.0/26", "10.0.0.64/29", "10.0.0.72/30", "10.0.0.76/32", "10.0.0.78/31", "10.0.0.80/28", "10.0.0.96/27", "10.0.0.128/25")
	if !slices.Equal(got[0], want) || !slices.Equal(got[1], prefixes("10.0.0.77/32")) {
		t.Errorf("a /24 with a hole at .77:\n got %v\nwant %v and [10.0.0.77/32]", got, want)
	}

	cases := []struct {
		name  string
		addrs []string
		class []int
		n     int
		want  [][]string
	}{
		{"alone", []string{"192.0.2.9"}, []int{0}, 1, [][]string{{"192.0.2.9/32"}}},
		// Narrowed to the addresses: not the /0 that nothing else is in.
		{"narrowed", []string{"10.0.0.3", "10.0.0.1"}, []int{0, 0}, 1, [][]string{{"10.0.0.0/30"}}},
		{"interleaved", []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}, []int{0, 1, 0, 1}, 2,
			[][]string{{"10.0.0.1/32", "10.0.0.3/32"}, {"10.0.0.2/32", "10.0.0.4/32"}}},
		{"families", []string{"2001:db8::1", "10.0.0.1", "::ffff:10.0.0.2", "2001:db8::ff"}, []int{0, 0, 0, 0}, 1,
			[][]string{{"10.0.0.0/30", "2001:db8::/120"}}},
		{"twice", []string{"10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.5"}, []int{0, 1, 0, 1}, 2,
			[][]string{{"10.0.0.1/32", "10.0.0.2/32"}, {"10.0.0.1/32", "10.0.0.5/32"}}},
		{"empty class", []string{"10.0.0.1"}, []int{1}, 3, [][]string{nil, {"10.0.0.1/32"}, nil}},
	}
	for _, tc := range cases {
		var addrs []netip.Addr
		for _, s := range tc.addrs {
			addrs = append(addrs, netip.MustParseAddr(s))
		}
		got := CoverPrefixes(addrs, tc.class, tc.n)
		if len(got) != tc.n {
			t.Errorf("%s: %d classes, want %d", tc.name, len(got), tc.n)
			continue
		}
		for c := range got {
			if fmt.Sprint(got[c]) != fmt.Sprint(prefixes(tc.want[c]...)) && !(len(got[c]) == 0 && len(tc.want[c]) == 0) {
				t.Errorf("%s: class %d covered by %v, want %v", tc.name, c, got[c], tc.want[c])
			}
		}
	}
}

// TestCoverPrefixesMinimal checks CoverPrefixes on random partitions of
// random addresses of a /26 against its definition, worked out naively:
// every address of a class covered, none of another class, each prefix
// the smallest around the addresses it holds, and as many prefixes as there
// are distinct largest prefixes without another class's address around the
// class's addresses.
func TestCoverPrefixesMinimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := netip.MustParseAddr("10.9.8.0")
	for round := range 300 {
		var addrs []netip.Addr
		var class []int
		n := 1 + rng.IntN(3)
		for a, i := base, 0; i < 64; a, i = a.Next(), i+1 {
			if rng.IntN(3) > 0 { // a third of the addresses not traced
				addrs = append(addrs, a)
				class = append(class, rng.IntN(n))
			}
		}
		got := CoverPrefixes(addrs, class, n)
		classOf := map[netip.Addr]int{}
		for i, a := range addrs {
			classOf[a] = class[i]
		}
		for c := range n {
			var members []netip.Addr
			for i, a := range addrs {
				if class[i] == c {
					members = append(members, a)
				}
			}
			checkCover(t, round, c, got[c], members, classOf)
		}
	}
}

func checkCover(t *testing.T, round, c int, ps []netip.Prefix, members []netip.Addr, classOf map[netip.Addr]int) {
	t.Helper()
	pure := func(p netip.Prefix) bool {
		for a, k := range classOf {
			if k != c && p.Contains(a) {
				return false
			}
		}
		return true
	}
	largest := map[netip.Prefix]bool{}
	for _, m := range members {
		covered := false
		for _, p := range ps {
			covered = covered || p.Contains(m)
		}
		if !covered {
			t.Fatalf("round %d class %d: %s not covered by %v", round, c, m, ps)
		}
		top := netip.PrefixFrom(m, 32)
		for bits := 31; bits >= 0; bits-- {
			p := netip.PrefixFrom(m, bits).Masked()
			if !pure(p) {
				break
			}
			top = p
		}
		largest[top] = true
	}
	for _, p := range ps {
		if !pure(p) {
			t.Fatalf("round %d class %d: %s holds an address of another class", round, c, p)
		}
		var held []netip.Addr
		for _, m := range members {
			if p.Contains(m) {
				held = append(held, m)
			}
		}
		if len(held) == 0 || netip.PrefixFrom(held[0], commonBits(held[0], held[len(held)-1])).Masked() != p {
			t.Fatalf("round %d class %d: %s is not the smallest prefix around %v", round, c, p, held)
		}
	}
	if len(ps) != len(largest) {
		t.Fatalf("round %d class %d: %d prefixes %v, the minimum is %d", round, c, len(ps), ps, len(largest))
	}
}

func TestSummarizePrefixes(t *testing.T) {
	eight := prefixes("10.0.0.128/25", "10.0.0.0/26", "10.0.0.64/29", "10.0.0.72/30", "10.0.0.76/32", "10.0.0.78/31", "10.0.0.80/28", "10.0.0.96/27")
	cases := []struct {
		in   []netip.Prefix
		max  int
		want []netip.Prefix
	}{
		{eight, 1, prefixes("10.0.0.0/24")},
		{eight, 3, prefixes("10.0.0.0/26", "10.0.0.64/26", "10.0.0.128/25")},
		{eight, 8, prefixes("10.0.0.0/26", "10.0.0.64/29", "10.0.0.72/30", "10.0.0.76/32", "10.0.0.78/31", "10.0.0.80/28", "10.0.0.96/27", "10.0.0.128/25")},
		// Narrowed: the /16 of two /24 apart is the smallest around them.
		{prefixes("10.1.200.0/24", "10.1.3.0/24"), 1, prefixes("10.1.0.0/16")},
		// One per family at least.
		{prefixes("10.0.0.1/32", "2001:db8::/64", "10.0.0.9/32"), 1, prefixes("10.0.0.0/28", "2001:db8::/64")},
	}
	for _, tc := range cases {
		got := SummarizePrefixes(tc.in, tc.max)
		if !slices.Equal(got, tc.want) {
			t.Errorf("SummarizePrefixes(%v, %d) = %v, want %v", tc.in, tc.max, got, tc.want)
		}
		for _, p := range tc.in {
			if !slices.ContainsFunc(got, func(q netip.Prefix) bool { return q.Bits() <= p.Bits() && q.Contains(p.Addr()) }) {
				t.Errorf("SummarizePrefixes(%v, %d): %s not held", tc.in, tc.max, p)
			}
		}
	}
}

func TestPrefixTextAndThousands(t *testing.T) {
	if got := PrefixText(prefixes("10.21.0.0/20", "10.21.16.7/32", "2001:db8::1/128")); got != "10.21.0.0/20, 10.21.16.7, 2001:db8::1" {
		t.Errorf("PrefixText: %q", got)
	}
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 4094: "4,094", 65534: "65,534", 1234567: "1,234,567", -4094: "-4,094"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
