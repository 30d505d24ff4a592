package targets

import (
	"slices"
	"testing"
)

// order returns every index a permutation yields.
func order(n, seed uint64) []uint64 {
	var out []uint64
	p := NewPermutation(n, seed)
	for i, ok := p.Next(); ok; i, ok = p.Next() {
		out = append(out, i)
	}
	return out
}

func TestPermutationOnce(t *testing.T) {
	for _, n := range []uint64{0, 1, 2, 3, 4, 7, 100, 4094, 65536, 1_000_000} {
		for _, seed := range []uint64{0, 1, 0xdeadbeef} {
			seen := make([]bool, n)
			p := NewPermutation(n, seed)
			var got uint64
			for i, ok := p.Next(); ok; i, ok = p.Next() {
				if i >= n {
					t.Fatalf("n %d seed %d: index %d out of range", n, seed, i)
				}
				if seen[i] {
					t.Fatalf("n %d seed %d: index %d twice", n, seed, i)
				}
				seen[i] = true
				got++
			}
			if got != n {
				t.Fatalf("n %d seed %d: %d indices, want %d", n, seed, got, n)
			}
			if _, ok := p.Next(); ok {
				t.Fatalf("n %d seed %d: Next after the end", n, seed)
			}
		}
	}
}

func TestPermutationSeed(t *testing.T) {
	const n = 10000
	a, b, c := order(n, 42), order(n, 42), order(n, 43)
	if !slices.Equal(a, b) {
		t.Error("the same seed gave different orders")
	}
	if slices.Equal(a, c) {
		t.Error("seeds 42 and 43 gave the same order")
	}
	// Different seeds for all small sizes with more than a few orders.
	for n := uint64(20); n < 200; n++ {
		if slices.Equal(order(n, 1), order(n, 2)) && slices.Equal(order(n, 1), order(n, 3)) {
			t.Errorf("n %d: seeds 1, 2 and 3 gave the same order", n)
		}
	}
}

func TestPermutationScatters(t *testing.T) {
	for _, seed := range []uint64{0, 1, 2, 3, 99} {
		const n = 100_000
		o := order(n, seed)
		var next int
		for i := 1; i < len(o); i++ {
			if o[i] == o[i-1]+1 || o[i-1] == o[i]+1 {
				next++
			}
		}
		if next*100 >= n {
			t.Errorf("seed %d: %d of %d consecutive indices differ by 1", seed, next, n)
		}
		if slices.IsSorted(o[:100]) {
			t.Errorf("seed %d: first indices in order: %v", seed, o[:100])
		}
	}
}

// TestPermutationLarge walks the start of permutations too large to check
// whole, where x·g needs 128 bits.
func TestPermutationLarge(t *testing.T) {
	for _, n := range []uint64{1 << 32, 1<<32 + 15, 1 << 40, 1<<63 - 1} {
		p := NewPermutation(n, 7)
		if p.small {
			t.Errorf("n %d: p %d is small", n, p.p)
		}
		seen := map[uint64]bool{}
		for range 10000 {
			i, ok := p.Next()
			if !ok || i >= n || seen[i] {
				t.Fatalf("n %d: Next = %d, %v (seen %v)", n, i, ok, seen[i])
			}
			seen[i] = true
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("NewPermutation(1<<63) did not panic")
		}
	}()
	NewPermutation(1<<63, 0)
}

func TestPermutationAllocs(t *testing.T) {
	for _, n := range []uint64{1000, 1 << 40} {
		p := NewPermutation(n, 1)
		if a := testing.AllocsPerRun(1000, func() { p.Next() }); a != 0 {
			t.Errorf("n %d: Next: %v allocations", n, a)
		}
	}
}

func TestPrimes(t *testing.T) {
	const max = 100_000
	composite := make([]bool, max)
	for i := 2; i < max; i++ {
		for j := 2 * i; j < max; j += i {
			composite[j] = true
		}
	}
	for i := range max {
		if want := i >= 2 && !composite[i]; isPrime(uint64(i)) != want {
			t.Fatalf("isPrime(%d) = %v", i, !want)
		}
	}
	for _, tc := range []struct{ n, want uint64 }{
		{0, 2}, {1, 2}, {2, 3}, {3, 5}, {4, 5}, {13, 17}, {65536, 65537},
		{1 << 32, 1<<32 + 15}, {1<<61 - 2, 1<<61 - 1}, {1<<63 - 1, 1<<63 + 29},
	} {
		if got := nextPrime(tc.n); got != tc.want {
			t.Errorf("nextPrime(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
	// 3215031751 = 151·751·28351 is a strong pseudoprime to bases 2, 3, 5
	// and 7; 2^32+1 = 641·6700417.
	for _, n := range []uint64{3215031751, 1<<32 + 1, 1<<64 - 1} {
		if isPrime(n) {
			t.Errorf("isPrime(%d) = true", n)
		}
	}
	if !isPrime(18446744073709551557) { // the largest 64-bit prime
		t.Error("isPrime(2^64-59) = false")
	}
}

func TestPrimeFactors(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		want []uint64
	}{
		{1, nil},
		{2, []uint64{2}},
		{12, []uint64{2, 3}},
		{65536, []uint64{2}},
		{4294967310, []uint64{2, 3, 5, 131, 364289}},        // 2^32+15-1
		{999983 * 1000003, []uint64{999983, 1000003}},       // two primes above the trial bound
		{1000003 * 1000003 * 1009, []uint64{1009, 1000003}}, // a square
	} {
		got := primeFactors(tc.n)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("primeFactors(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
	// Check large ones by multiplying back.
	for _, n := range []uint64{1<<63 + 28, 1<<62 - 2, 18446744073709551556, 1<<61 - 2} {
		m := n
		for _, q := range primeFactors(n) {
			if !isPrime(q) {
				t.Errorf("primeFactors(%d): %d is not prime", n, q)
			}
			if m%q != 0 {
				t.Errorf("primeFactors(%d): %d does not divide it", n, q)
			}
			for m%q == 0 {
				m /= q
			}
		}
		if m != 1 {
			t.Errorf("primeFactors(%d): %d left over", n, m)
		}
	}
}

func BenchmarkPermutationNext(b *testing.B) {
	for _, n := range []uint64{1 << 16, 1 << 40} {
		b.Run(map[bool]string{true: "64bit", false: "128bit"}[n < 1<<32], func(b *testing.B) {
			p := NewPermutation(n, 1)
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := p.Next(); !ok {
					p = NewPermutation(n, 1)
				}
			}
		})
	}
}
