package targets

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
)

// IPv6 destinations are held as their IPv4 counterparts are, as sorted,
// disjoint ranges, of 128-bit values.

// u128 is an IPv6 address as a number.
type u128 struct{ hi, lo uint64 }

func u128Of(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func (x u128) addr() netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], x.hi)
	binary.BigEndian.PutUint64(b[8:], x.lo)
	return netip.AddrFrom16(b)
}

func (x u128) cmp(y u128) int {
	if c := cmp.Compare(x.hi, y.hi); c != 0 {
		return c
	}
	return cmp.Compare(x.lo, y.lo)
}

// add returns x+n, wrapping around at 2^128.
func (x u128) add(n uint64) u128 {
	lo, carry := bits.Add64(x.lo, n, 0)
	return u128{x.hi + carry, lo}
}

// sub returns x-n, wrapping around at 0.
func (x u128) sub(n uint64) u128 {
	lo, borrow := bits.Sub64(x.lo, n, 0)
	return u128{x.hi - borrow, lo}
}

var maxU128 = u128{^uint64(0), ^uint64(0)}

// rng6 is the inclusive range of IPv6 addresses lo..hi.
type rng6 struct{ lo, hi u128 }

// size returns the number of addresses in r, or 2^64-1 if there are more.
func (r rng6) size() uint64 {
	lo, borrow := bits.Sub64(r.hi.lo, r.lo.lo, 0)
	if r.hi.hi-r.lo.hi-borrow != 0 || lo == ^uint64(0) {
		return ^uint64(0)
	}
	return lo + 1
}

// span6 is a range of addresses of a Set with the number of addresses in
// it and in every span before it.
type span6 struct {
	lo, hi u128
	end    uint64
}

// unroutable6 lists, sorted, the IPv6 addresses never traced from a prefix:
// the unspecified address, loopback (an explicit ::1 is traced), the
// IPv4-mapped addresses and multicast.
var unroutable6 = [...]rng6{
	{u128{0, 0}, u128{0, 1}},                               // ::/128, ::1/128
	{u128{0, 0xffff_0000_0000}, u128{0, 0xffff_ffff_ffff}}, // ::ffff:0:0/96
	{u128{0xff00 << 48, 0}, maxU128},                       // ff00::/8
}

// neverRoutable6 says why an explicit IPv6 destination is never traced, or
// returns "". ::1 is not included: local addresses can be traced.
func neverRoutable6(a netip.Addr) string {
	switch {
	case a.IsUnspecified():
		return "unspecified address (::/128)"
	case a.Is4In6():
		return fmt.Sprintf("IPv4-mapped (::ffff:0:0/96): give it as %s", a.Unmap())
	case a.IsMulticast():
		return "multicast (ff00::/8)"
	}
	return ""
}

// count6 returns the number of addresses in rs, at most 2^64-1.
func count6(rs []rng6) uint64 {
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

// merge6 merges, in place, ranges sorted by lo that overlap or touch.
func merge6(rs []rng6) []rng6 {
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && (out[n-1].hi == maxU128 || r.lo.cmp(out[n-1].hi.add(1)) <= 0) {
			if r.hi.cmp(out[n-1].hi) > 0 {
				out[n-1].hi = r.hi
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// subtract6 appends to dst the addresses of in that are not in cut; in
// and cut are sorted and disjoint.
func subtract6(dst, in, cut []rng6) []rng6 {
	j := 0
	for _, r := range in {
		for j < len(cut) && cut[j].hi.cmp(r.lo) < 0 {
			j++
		}
		lo := r.lo
		covered := false
		for k := j; k < len(cut) && cut[k].lo.cmp(r.hi) <= 0; k++ {
			if cut[k].lo.cmp(lo) > 0 {
				dst = append(dst, rng6{lo, cut[k].lo.sub(1)})
			}
			if cut[k].hi.cmp(r.hi) >= 0 {
				covered = true
				break
			}
			lo = cut[k].hi.add(1)
		}
		if !covered {
			dst = append(dst, rng6{lo, r.hi})
		}
	}
	return dst
}

// excludeRanges6 returns the IPv6 prefixes of ps as sorted, disjoint
// ranges.
func excludeRanges6(ps []netip.Prefix) []rng6 {
	var rs []rng6
	for _, p := range ps {
		if p.IsValid() && p.Addr().Is6() {
			rs = append(rs, prefixRange6(p.Masked()))
		}
	}
	sortRanges6(rs)
	return merge6(rs)
}

func sortRanges6(rs []rng6) {
	slices.SortFunc(rs, func(x, y rng6) int { return x.lo.cmp(y.lo) })
}

// prefixRange6 returns all the addresses of a masked IPv6 prefix.
func prefixRange6(p netip.Prefix) rng6 {
	lo := u128Of(p.Addr())
	hi := lo
	switch host := 128 - p.Bits(); {
	case host >= 64:
		hi.lo = ^uint64(0)
		hi.hi |= uint64(1)<<(host-64) - 1
	default:
		hi.lo |= uint64(1)<<host - 1
	}
	return rng6{lo, hi}
}

// at6 returns the address of index i (< Len()) of a set of IPv6 spans.
func (s *Set) at6(i uint64) netip.Addr {
	spans := s.spans6
	base, n := 0, len(spans)
	for n > 1 {
		half := n >> 1
		if spans[base+half-1].end <= i {
			base += half
		}
		n -= half
	}
	sp := spans[base]
	first := sp.end - rng6{sp.lo, sp.hi}.size()
	return sp.lo.add(i - first).addr()
}

// contains6 reports whether the IPv6 address a is in the set.
func (s *Set) contains6(a u128) bool {
	lo, hi := 0, len(s.spans6)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.spans6[m].hi.cmp(a) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo < len(s.spans6) && s.spans6[lo].lo.cmp(a) <= 0
}
