package analysis

import (
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// CoverPrefixes returns, for each class of a partition of addresses, the
// fewest prefixes that hold every address of the class and no address of
// another class, each the smallest prefix that holds the addresses it
// covers, in address order. addrs[i] belongs to class[i], 0 <= class[i] <
// n.
//
// Addresses that are in no class may fall inside a prefix: an address that
// was not traced is no reason to split one, so the 4,094 hosts of a /20
// are covered by the /20. An address given in two classes cannot be told
// apart from itself: each of its classes gets its host prefix there.
// IPv4-mapped IPv6 addresses count as IPv4, and zones are dropped.
//
// The cover is minimal: a prefix without another class's address lies
// inside the largest such prefix around any address it holds, and these
// largest prefixes are disjoint, so a class needs one prefix for each of
// them that holds some of its addresses; CoverPrefixes returns exactly that
// one, narrowed to the addresses it holds.
func CoverPrefixes(addrs []netip.Addr, class []int, n int) [][]netip.Prefix {
	es := make([]classedAddr, len(addrs))
	for i, a := range addrs {
		es[i] = classedAddr{a.Unmap().WithZone(""), class[i]}
	}
	slices.SortFunc(es, func(x, y classedAddr) int {
		if c := x.addr.Compare(y.addr); c != 0 {
			return c
		}
		return x.class - y.class
	})
	es = slices.Compact(es)
	c := &coverer{es: es, out: make([][]netip.Prefix, n), runEnd: make([]int, len(es))}
	for i := len(es) - 1; i >= 0; i-- {
		c.runEnd[i] = i + 1
		if i+1 < len(es) && es[i+1].class == es[i].class {
			c.runEnd[i] = c.runEnd[i+1]
		}
	}
	// IPv4 addresses sort before IPv6 ones: cover each family on its own.
	v6 := sort.Search(len(es), func(i int) bool { return es[i].addr.Is6() })
	c.cover(0, v6)
	c.cover(v6, len(es))
	return c.out
}

type classedAddr struct {
	addr  netip.Addr
	class int
}

type coverer struct {
	es     []classedAddr // sorted by address
	runEnd []int         // runEnd[i]: the end of the run of es[i]'s class from i
	out    [][]netip.Prefix
}

// cover covers es[lo:hi], addresses of one family sorted: the smallest
// prefix holding them all is one prefix of a class when they are all of
// that class, and otherwise splits in two halves, covered in turn.
func (c *coverer) cover(lo, hi int) {
	if lo >= hi {
		return
	}
	first, last := c.es[lo].addr, c.es[hi-1].addr
	bits := commonBits(first, last)
	if c.runEnd[lo] >= hi {
		p := c.es[lo].class
		c.out[p] = append(c.out[p], netip.PrefixFrom(first, bits).Masked())
		return
	}
	if bits == first.BitLen() {
		// One address in several classes.
		for i := lo; i < hi; i++ {
			p := c.es[i].class
			c.out[p] = append(c.out[p], netip.PrefixFrom(first, bits))
		}
		return
	}
	// The addresses share bits leading bits: those with the next bit clear
	// come first.
	mid := lo + sort.Search(hi-lo, func(i int) bool { return bitAt(c.es[lo+i].addr, bits) })
	c.cover(lo, mid)
	c.cover(mid, hi)
}

// commonBits is the number of leading bits a and b (of one family) share.
func commonBits(a, b netip.Addr) int {
	x, y := a.As16(), b.As16()
	skip := 0
	if a.Is4() {
		skip = 12
	}
	n := 0
	for i := skip; i < 16; i++ {
		if d := x[i] ^ y[i]; d != 0 {
			for d&0x80 == 0 {
				d <<= 1
				n++
			}
			return n
		}
		n += 8
	}
	return n
}

// bitAt reports whether bit k (0 the most significant) of a is set.
func bitAt(a netip.Addr, k int) bool {
	b := a.As16()
	if a.Is4() {
		k += 96
	}
	return b[k/8]&(0x80>>(k%8)) != 0
}

// lastAddr is the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As16()
	off := 0
	if p.Addr().Is4() {
		off = 96
	}
	for k := off + p.Bits(); k < 128; k++ {
		b[k/8] |= 0x80 >> (k % 8)
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		return a.Unmap()
	}
	return a
}

// SummarizePrefixes returns at most max prefixes (but one per address
// family at least) that hold the disjoint prefixes ps, each the smallest that
// holds those it replaces, in address order. It is ps, sorted, when ps has
// no more than max prefixes; otherwise the summary holds addresses outside
// ps.
func SummarizePrefixes(ps []netip.Prefix, max int) []netip.Prefix {
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(x, y netip.Prefix) int {
		if c := x.Addr().Compare(y.Addr()); c != 0 {
			return c
		}
		return x.Bits() - y.Bits()
	})
	if len(ps) <= max {
		return ps
	}
	// Cutting every prefix to its first bits leading bits merges more of
	// them the smaller bits is: take the largest bits that leaves at most
	// max (0 leaves one per family).
	bits := sort.Search(129, func(b int) bool { return countTruncated(ps, b+1) > max })
	var out []netip.Prefix
	for i := 0; i < len(ps); {
		j := i + 1
		for j < len(ps) && truncate(ps[j], bits) == truncate(ps[i], bits) {
			j++
		}
		first, last := ps[i].Masked().Addr(), lastAddr(ps[j-1])
		out = append(out, netip.PrefixFrom(first, commonBits(first, last)).Masked())
		i = j
	}
	return out
}

// truncate is p cut to its first bits bits, or p when it is shorter.
func truncate(p netip.Prefix, bits int) netip.Prefix {
	if p.Bits() <= bits {
		return p.Masked()
	}
	return netip.PrefixFrom(p.Addr(), bits).Masked()
}

// countTruncated counts the distinct prefixes of ps (sorted) cut to bits.
func countTruncated(ps []netip.Prefix, bits int) int {
	n := 0
	for i := range ps {
		if i == 0 || truncate(ps[i], bits) != truncate(ps[i-1], bits) {
			n++
		}
	}
	return n
}

// PrefixText writes prefixes as a user reads them: comma separated, a host
// prefix as its address.
func PrefixText(ps []netip.Prefix) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		if p.IsSingleIP() {
			b.WriteString(p.Addr().String())
		} else {
			b.WriteString(p.String())
		}
	}
	return b.String()
}

// thousands writes n with a comma every three digits: 65,534.
func thousands(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// counted is plural with thousands separators: "4,094 destinations".
func counted(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return thousands(n) + " " + many
}
