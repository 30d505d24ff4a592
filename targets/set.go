package targets

import (
	"math/bits"
	"net/netip"
	"slices"
	"sort"
)

// A Set is a sorted, deduplicated set of IPv4 or IPv6 destinations (one
// family per set), held as ranges of addresses. Index i of At runs over
// the addresses in increasing order. A Set is safe for concurrent use.
type Set struct {
	spans4 []span[u32]
	spans6 []span[u128]
	v6     bool
	names  map[netip.Addr]string // the hostname given for an address
	stats  Stats
}

// Is6 says whether the set is of IPv6 destinations.
func (s *Set) Is6() bool { return s.v6 }

// span is a range of addresses of a Set with the number of addresses in it
// and in every span before it.
type span[N number[N]] struct {
	lo, hi N
	end    uint64
}

// Len returns the number of addresses in the set.
func (s *Set) Len() uint64 {
	if s.v6 {
		return total(s.spans6)
	}
	return total(s.spans4)
}

// At returns the address of index i, in increasing order of addresses. It
// panics unless i < Len().
func (s *Set) At(i uint64) netip.Addr {
	if i >= s.Len() {
		panic("targets: index out of range")
	}
	if s.v6 {
		return at6(s.spans6, i)
	}
	return at4(s.spans4, i)
}

// at4 and at6 return the address of index i (< total(spans)). They are one
// function written out for each family, without a type parameter, as At
// runs for every destination probed (see number).
func at4(spans []span[u32], i uint64) netip.Addr {
	sp := &spans[find(spans, i)]
	return sp.lo.add(i - (sp.end - sp.lo.countTo(sp.hi))).addr()
}

func at6(spans []span[u128], i uint64) netip.Addr {
	sp := &spans[find(spans, i)]
	return sp.lo.add(i - (sp.end - sp.lo.countTo(sp.hi))).addr()
}

// Contains reports whether addr is in the set.
func (s *Set) Contains(addr netip.Addr) bool {
	// The first span that ends at or after addr holds it, if any does. As
	// in at4 and at6, the search is written out for each family.
	switch {
	case addr.Is4() && !s.v6:
		a, spans := u32Of(addr), s.spans4
		k := sort.Search(len(spans), func(k int) bool { return spans[k].hi >= a })
		return k < len(spans) && spans[k].lo <= a
	case addr.Is6() && !addr.Is4In6() && s.v6:
		a, spans := u128Of(addr), s.spans6
		k := sort.Search(len(spans), func(k int) bool { return spans[k].hi.cmp(a) >= 0 })
		return k < len(spans) && spans[k].lo.cmp(a) <= 0
	}
	return false
}

// Name returns the hostname by which addr was first given, or else the
// address itself as text.
func (s *Set) Name(addr netip.Addr) string {
	if name, ok := s.names[addr]; ok {
		return name
	}
	return addr.String()
}

// Stats returns the counts of what was read and dropped to build the set.
func (s *Set) Stats() Stats { return s.stats }

// total returns the number of addresses in spans.
func total[N number[N]](spans []span[N]) uint64 {
	if len(spans) == 0 {
		return 0
	}
	return spans[len(spans)-1].end
}

// find returns the index of the span holding index i (< total(spans)):
// the first that ends after i.
func find[N number[N]](spans []span[N], i uint64) int {
	// That span is in spans[base:base+n].
	base, n := 0, len(spans)
	for n > 1 {
		half := n >> 1
		if spans[base+half-1].end <= i {
			base += half
		}
		n -= half
	}
	return base
}

// rng is the inclusive range of addresses lo..hi.
type rng[N number[N]] struct{ lo, hi N }

// size returns the number of addresses in r, at most 2^64-1.
func (r rng[N]) size() uint64 { return r.lo.countTo(r.hi) }

// count returns the number of addresses in rs, at most 2^64-1.
func count[N number[N]](rs []rng[N]) uint64 {
	var n uint64
	for _, r := range rs {
		s, carry := bits.Add64(n, r.size(), 0)
		if carry != 0 {
			return ^uint64(0)
		}
		n = s
	}
	return n
}

// subtract appends to dst the addresses of in that are not in cut; in and
// cut are sorted and disjoint.
func subtract[N number[N]](dst, in, cut []rng[N]) []rng[N] {
	j := 0
	for _, r := range in {
		for j < len(cut) && cut[j].hi.cmp(r.lo) < 0 {
			j++
		}
		lo := r.lo
		covered := false
		for k := j; k < len(cut) && cut[k].lo.cmp(r.hi) <= 0; k++ {
			if cut[k].lo.cmp(lo) > 0 {
				dst = append(dst, rng[N]{lo, cut[k].lo.sub(1)})
			}
			if cut[k].hi.cmp(r.hi) >= 0 {
				covered = true
				break
			}
			lo = cut[k].hi.add(1)
		}
		if !covered {
			dst = append(dst, rng[N]{lo, r.hi})
		}
	}
	return dst
}

// An ipFamily is what the range code needs to know of an address family
// besides the arithmetic of its numbers.
type ipFamily[N number[N]] struct {
	bits       int                // the length of an address
	num        func(netip.Addr) N // an address of the family as a number
	unroutable []rng[N]           // sorted: dropped from prefixes
	broadcast  bool               // a prefix drops its last address too

	// byLo orders ranges by lo, to sort the entries: most of the work of
	// Build. It is written out for each family (see number).
	byLo func(x, y rng[N]) int
}

// unroutable4 lists, sorted, the IPv4 addresses never traced from a prefix.
var unroutable4 = [...]rng[u32]{
	{0x00000000, 0x00ffffff}, // 0.0.0.0/8
	{0x7f000000, 0x7fffffff}, // 127.0.0.0/8
	{0xe0000000, 0xffffffff}, // 224.0.0.0/4 and 240.0.0.0/4
}

// unroutable6 lists, sorted, the IPv6 addresses never traced from a prefix:
// the unspecified address, loopback (an explicit ::1 is traced), the
// IPv4-mapped addresses and multicast.
var unroutable6 = [...]rng[u128]{
	{u128{0, 0}, u128{0, 1}},                               // ::/128, ::1/128
	{u128{0, 0xffff_0000_0000}, u128{0, 0xffff_ffff_ffff}}, // ::ffff:0:0/96
	{u128{0xff00 << 48, 0}, u128{^uint64(0), ^uint64(0)}},  // ff00::/8
}

// ip4 and ip6 are the families of a Set.
var (
	ip4 = ipFamily[u32]{
		bits: 32, num: u32Of, unroutable: unroutable4[:], broadcast: true,
		byLo: func(x, y rng[u32]) int { return x.lo.cmp(y.lo) },
	}
	ip6 = ipFamily[u128]{
		bits: 128, num: u128Of, unroutable: unroutable6[:],
		byLo: func(x, y rng[u128]) int { return x.lo.cmp(y.lo) },
	}
)

// merge sorts ranges by lo and merges, in place, those that overlap or
// touch.
func (f *ipFamily[N]) merge(rs []rng[N]) []rng[N] {
	slices.SortFunc(rs, f.byLo)
	out := rs[:0]
	for _, r := range rs {
		// r touches the last range if it starts right after it; hi+1 wraps
		// around only if hi is the last address, which r cannot follow.
		if n := len(out); n > 0 && (r.lo.cmp(out[n-1].hi) <= 0 || r.lo == out[n-1].hi.add(1)) {
			if r.hi.cmp(out[n-1].hi) > 0 {
				out[n-1].hi = r.hi
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// prefixRange returns all the addresses of a masked prefix of the family.
func (f *ipFamily[N]) prefixRange(p netip.Prefix) rng[N] {
	lo := f.num(p.Addr())
	return rng[N]{lo, lo.fill(f.bits - p.Bits())}
}

// hosts returns the addresses a prefix entry stands for: all but the
// first, the network address (in IPv6 the subnet-router anycast address,
// RFC 4291), and in IPv4 the last, the broadcast address, unless the
// prefix is too short to spare them (a /31, /32, /127 or /128).
func (f *ipFamily[N]) hosts(p netip.Prefix) rng[N] {
	r := f.prefixRange(p)
	if f.bits-p.Bits() >= 2 {
		r.lo = r.lo.add(1)
		if f.broadcast {
			r.hi = r.hi.sub(1)
		}
	}
	return r
}

// addPrefix appends to raw the addresses of a prefix entry, r, but the
// never-routable ones, and returns how many it kept and dropped.
func (f *ipFamily[N]) addPrefix(raw []rng[N], r rng[N]) (_ []rng[N], kept, dropped uint64) {
	n := len(raw)
	raw = subtract(raw, []rng[N]{r}, f.unroutable)
	kept = count(raw[n:])
	return raw, kept, r.size() - kept
}

// spans merges, in place, the ranges of every entry of the family, removes
// the excluded prefixes of the family from them and returns the spans of a
// Set, and the number of addresses before and after the exclusion.
func (f *ipFamily[N]) spans(raw *[]rng[N], exclude []netip.Prefix) (spans []span[N], union, kept uint64) {
	*raw = f.merge(*raw)
	union = count(*raw)
	var excl []rng[N]
	for _, p := range exclude {
		if p.IsValid() && p.Addr().BitLen() == f.bits {
			excl = append(excl, f.prefixRange(p.Masked()))
		}
	}
	excl = f.merge(excl)
	ranges := subtract(make([]rng[N], 0, len(*raw)+len(excl)), *raw, excl)
	spans = make([]span[N], len(ranges))
	var end uint64
	for i, r := range ranges {
		end += r.size()
		spans[i] = span[N]{lo: r.lo, hi: r.hi, end: end}
	}
	return spans, union, count(ranges)
}
