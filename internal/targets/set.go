package targets

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
)

// A Set is a sorted, deduplicated set of IPv4 or IPv6 destinations (one
// family per set), held as ranges of addresses. Index i of At runs over
// the addresses in increasing order. A Set is safe for concurrent use.
type Set struct {
	spans  []span  // IPv4
	spans6 []span6 // IPv6
	v6     bool
	names  map[netip.Addr]string // the hostname given for an address
	stats  Stats
}

// Is6 says whether the set is of IPv6 destinations.
func (s *Set) Is6() bool { return s.v6 }

// span is a range of addresses of a Set with the number of addresses in it
// and in every span before it.
type span struct {
	lo, hi uint32
	end    uint64
}

// Len returns the number of addresses in the set.
func (s *Set) Len() uint64 {
	if s.v6 {
		if len(s.spans6) == 0 {
			return 0
		}
		return s.spans6[len(s.spans6)-1].end
	}
	if len(s.spans) == 0 {
		return 0
	}
	return s.spans[len(s.spans)-1].end
}

// At returns the address of index i, in increasing order of addresses. It
// panics unless i < Len().
func (s *Set) At(i uint64) netip.Addr {
	if i >= s.Len() {
		panic("targets: index out of range")
	}
	if s.v6 {
		return s.at6(i)
	}
	spans := s.spans
	// The first span that ends after i is in spans[base:base+n].
	base, n := 0, len(spans)
	for n > 1 {
		half := n >> 1
		if spans[base+half-1].end <= i {
			base += half
		}
		n -= half
	}
	sp := spans[base]
	first := sp.end - (uint64(sp.hi-sp.lo) + 1)
	return addrFrom(sp.lo + uint32(i-first))
}

// Contains reports whether addr is in the set.
func (s *Set) Contains(addr netip.Addr) bool {
	if addr.Is6() && !addr.Is4In6() {
		return s.v6 && s.contains6(u128Of(addr))
	}
	if !addr.Is4() || s.v6 {
		return false
	}
	a := u32(addr)
	// The first span that ends at or after a.
	lo, hi := 0, len(s.spans)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.spans[m].hi < a {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo < len(s.spans) && s.spans[lo].lo <= a
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

// rng is the inclusive range of addresses lo..hi.
type rng struct{ lo, hi uint32 }

func (r rng) size() uint64 { return uint64(r.hi-r.lo) + 1 }

// unroutable lists, sorted, the addresses never traced from a prefix.
var unroutable = [...]rng{
	{0x00000000, 0x00ffffff}, // 0.0.0.0/8
	{0x7f000000, 0x7fffffff}, // 127.0.0.0/8
	{0xe0000000, 0xffffffff}, // 224.0.0.0/4 and 240.0.0.0/4
}

// count returns the number of addresses in rs.
func count(rs []rng) uint64 {
	var n uint64
	for _, r := range rs {
		n += r.size()
	}
	return n
}

// merge merges, in place, ranges sorted by lo that overlap or touch.
func merge(rs []rng) []rng {
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && uint64(r.lo) <= uint64(out[n-1].hi)+1 {
			out[n-1].hi = max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// subtract appends to dst the addresses of in that are not in cut; in and
// cut are sorted and disjoint.
func subtract(dst, in, cut []rng) []rng {
	j := 0
	for _, r := range in {
		for j < len(cut) && cut[j].hi < r.lo {
			j++
		}
		lo := r.lo
		covered := false
		for k := j; k < len(cut) && cut[k].lo <= r.hi; k++ {
			if cut[k].lo > lo {
				dst = append(dst, rng{lo, cut[k].lo - 1})
			}
			if cut[k].hi >= r.hi {
				covered = true
				break
			}
			lo = cut[k].hi + 1
		}
		if !covered {
			dst = append(dst, rng{lo, r.hi})
		}
	}
	return dst
}

// excludeRanges returns the IPv4 prefixes of ps as sorted, disjoint ranges.
func excludeRanges(ps []netip.Prefix) []rng {
	var rs []rng
	for _, p := range ps {
		if p.IsValid() && p.Addr().Is4() {
			rs = append(rs, prefixRange(p.Masked()))
		}
	}
	slices.SortFunc(rs, func(x, y rng) int { return cmp.Compare(x.lo, y.lo) })
	return merge(rs)
}

// prefixRange returns all the addresses of a masked IPv4 prefix.
func prefixRange(p netip.Prefix) rng {
	lo := u32(p.Addr())
	return rng{lo, lo | uint32(uint64(1)<<(32-p.Bits())-1)}
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func addrFrom(a uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], a)
	return netip.AddrFrom4(b)
}
