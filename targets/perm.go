package targets

import "math/bits"

// A Permutation yields every index 0..n-1 exactly once, in a pseudo-random
// order, in O(1) memory. It walks the cyclic multiplicative group of the
// integers modulo the smallest prime p above n: from a start element x it
// visits x·g, x·g², ... for a primitive root g, which runs through every
// element 1..p-1 once, and yields x-1 for the elements x <= n. The seed picks
// g and the start, so the same n and seed always give the same order.
type Permutation struct {
	n, p, g uint64
	x       uint64 // the element visited next
	left    uint64 // indices not yet yielded
	small   bool   // p < 2^32: x·g fits in 64 bits
}

// NewPermutation returns a permutation of 0..n-1 chosen by seed. It panics if
// n >= 2^63.
func NewPermutation(n, seed uint64) *Permutation {
	if n >= 1<<63 {
		panic("targets: permutation of 2^63 or more elements")
	}
	p := nextPrime(n)
	rnd := splitmix{seed}
	g := uint64(1) // the only element of the group modulo 2
	if p > 2 {
		factors := primeFactors(p - 1)
	search:
		for {
			g = 2 + rnd.next()%(p-2) // in 2..p-1
			for _, q := range factors {
				if powMod(g, (p-1)/q, p) == 1 {
					continue search
				}
			}
			break
		}
	}
	x := 1 + rnd.next()%(p-1)
	return &Permutation{n: n, p: p, g: g, x: x, left: n, small: p < 1<<32}
}

// Next returns the next index, or false once all n were returned.
func (pm *Permutation) Next() (uint64, bool) {
	for pm.left > 0 {
		v := pm.x
		if pm.small {
			pm.x = pm.x * pm.g % pm.p
		} else {
			pm.x = mulMod(pm.x, pm.g, pm.p)
		}
		if v <= pm.n {
			pm.left--
			return v - 1, true
		}
	}
	return 0, false
}

// splitmix is the SplitMix64 generator, to spread the bits of a seed.
type splitmix struct{ s uint64 }

func (r *splitmix) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func mulMod(a, b, m uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return bits.Rem64(hi, lo, m)
}

func powMod(b, e, m uint64) uint64 {
	r := uint64(1) % m
	b %= m
	for ; e > 0; e >>= 1 {
		if e&1 == 1 {
			r = mulMod(r, b, m)
		}
		b = mulMod(b, b, m)
	}
	return r
}

// nextPrime returns the smallest prime above n; n < 2^63.
func nextPrime(n uint64) uint64 {
	if n < 2 {
		return 2
	}
	c := n + 1
	if c%2 == 0 && c != 2 {
		c++
	}
	for !isPrime(c) {
		c += 2
	}
	return c
}

var smallPrimes = [...]uint64{2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37}

// isPrime is a Miller-Rabin test, exact for all 64-bit n with these bases.
func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	for _, q := range smallPrimes {
		if n%q == 0 {
			return n == q
		}
	}
	d, s := n-1, 0
	for d%2 == 0 {
		d /= 2
		s++
	}
witness:
	for _, a := range smallPrimes {
		x := powMod(a, d, n)
		if x == 1 || x == n-1 {
			continue
		}
		for range s - 1 {
			x = mulMod(x, x, n)
			if x == n-1 {
				continue witness
			}
		}
		return false
	}
	return true
}

// primeFactors returns the distinct prime factors of n > 0, in no
// particular order.
func primeFactors(n uint64) []uint64 {
	var fs []uint64
	for q := uint64(2); q < 1000 && q*q <= n; q++ {
		if n%q == 0 {
			fs = append(fs, q)
			for n%q == 0 {
				n /= q
			}
		}
	}
	var split func(m uint64)
	split = func(m uint64) {
		switch {
		case m == 1:
		case isPrime(m):
			for _, f := range fs {
				if f == m {
					return
				}
			}
			fs = append(fs, m)
		default:
			d := rho(m)
			split(d)
			split(m / d)
		}
	}
	split(n)
	return fs
}

// rho returns a nontrivial factor of a composite n without factors below
// 1000, by Pollard's rho method with Brent's cycle detection.
func rho(n uint64) uint64 {
	for c := uint64(1); ; c++ {
		f := func(x uint64) uint64 { return (mulMod(x, x, n) + c) % n }
		x, y, d := uint64(2), uint64(2), uint64(1)
		for power, lam := 1, 1; d == 1; lam++ {
			if power == lam {
				x, power, lam = y, power*2, 0
			}
			y = f(y)
			d = gcd(max(x, y)-min(x, y), n)
		}
		if d != n {
			return d
		}
	}
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
