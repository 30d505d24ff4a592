package targets

import (
	"cmp"
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// A number is an address as an unsigned integer: u32 for IPv4, u128 for
// IPv6. The range code works on numbers, not addresses, so that one copy
// of it serves both families, and it needs only these operations.
// Arithmetic wraps around, as that of the built-in integers does.
//
// Go compiles generic code once for all types of the same memory layout,
// so a method called through N is an indirect call that is not inlined:
// code that runs per probe or per comparison of a sort uses u32 and u128
// directly.
type number[N any] interface {
	comparable
	cmp(y N) int        // -1, 0 or +1 as x is less than, equal to or more than y
	add(n uint64) N     // x+n
	sub(n uint64) N     // x-n
	fill(n int) N       // x with its n lowest bits set: the last address of a prefix
	countTo(y N) uint64 // the count of numbers x..y, at most 2^64-1
	addr() netip.Addr
}

// u32 is an IPv4 address as a number.
type u32 uint32

func u32Of(a netip.Addr) u32 {
	b := a.As4()
	return u32(binary.BigEndian.Uint32(b[:]))
}

func (x u32) addr() netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(x))
	return netip.AddrFrom4(b)
}

func (x u32) cmp(y u32) int        { return cmp.Compare(x, y) }
func (x u32) add(n uint64) u32     { return x + u32(n) }
func (x u32) sub(n uint64) u32     { return x - u32(n) }
func (x u32) fill(n int) u32       { return x | u32(uint64(1)<<n-1) }
func (x u32) countTo(y u32) uint64 { return uint64(y-x) + 1 }

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

func (x u128) add(n uint64) u128 {
	lo, carry := bits.Add64(x.lo, n, 0)
	return u128{x.hi + carry, lo}
}

func (x u128) sub(n uint64) u128 {
	lo, borrow := bits.Sub64(x.lo, n, 0)
	return u128{x.hi - borrow, lo}
}

func (x u128) fill(n int) u128 {
	if n >= 64 {
		return u128{x.hi | (uint64(1)<<(n-64) - 1), ^uint64(0)}
	}
	return u128{x.hi, x.lo | (uint64(1)<<n - 1)}
}

// countTo saturates: an IPv6 range may hold up to 2^128 addresses, more
// than a uint64 counts.
func (x u128) countTo(y u128) uint64 {
	lo, borrow := bits.Sub64(y.lo, x.lo, 0)
	if y.hi-x.hi-borrow != 0 || lo == ^uint64(0) {
		return ^uint64(0)
	}
	return lo + 1
}
