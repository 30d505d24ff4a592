package analysis

import (
	"math"
	"testing"
)

func TestChiSquareSF(t *testing.T) {
	tests := []struct {
		x    float64
		df   int
		want float64
		tol  float64 // relative
	}{
		// Critical values from the chi-square table.
		{3.841459, 1, 0.05, 1e-5},
		{6.634897, 1, 0.01, 1e-5},
		{5.991465, 2, 0.05, 1e-5},
		{11.344867, 3, 0.01, 1e-5},
		{9.487729, 4, 0.05, 1e-5},
		{23.209251, 10, 0.01, 1e-5},
		{124.342113, 100, 0.05, 1e-5},
		{0, 3, 1, 0},
		{math.Inf(1), 3, 0, 0},
		// Closed forms: df 1 is erfc(sqrt(x/2)), df 2 is exp(-x/2), df 4
		// is exp(-x/2)(1+x/2).
		{18, 1, math.Erfc(3), 1e-12},
		{0.01, 1, math.Erfc(math.Sqrt(0.005)), 1e-12},
		{200, 1, math.Erfc(10), 1e-10},
		{0.5, 2, math.Exp(-0.25), 1e-13},
		{40, 2, math.Exp(-20), 1e-12},
		{3, 4, math.Exp(-1.5) * 2.5, 1e-13},
		{1000, 4, math.Exp(-500) * 501, 1e-10},
	}
	for _, tc := range tests {
		got := chiSquareSF(tc.x, tc.df)
		if d := math.Abs(got - tc.want); d > tc.tol*tc.want && d != 0 {
			t.Errorf("sf(%v, %d) = %.10g, want %.10g", tc.x, tc.df, got, tc.want)
		}
	}
	// Monotone in x, within [0, 1], on both sides of x = a+1 where the
	// series gives way to the continued fraction.
	for _, df := range []int{1, 2, 3, 7, 30} {
		prev := 1.0
		for x := 0.0; x < 100; x += 0.25 {
			p := chiSquareSF(x, df)
			if p > prev+1e-15 || p < 0 || p > 1 {
				t.Fatalf("sf(%v, %d) = %v after %v", x, df, p, prev)
			}
			prev = p
		}
	}
	for _, bad := range []float64{chiSquareSF(1, 0), chiSquareSF(math.NaN(), 1), gammaQ(-1, 1)} {
		if !math.IsNaN(bad) {
			t.Errorf("bad input gave %v", bad)
		}
	}
}

func TestUniformityPValue(t *testing.T) {
	tests := []struct {
		counts []int
		p      float64
		enough bool
	}{
		{[]int{16, 16}, 1, true},
		{[]int{28, 4}, math.Erfc(3), true},       // chi-square 18, 1 df
		{[]int{10, 10, 10, 30}, 1.697e-4, true},  // chi-square 20, 3 df
		{[]int{13, 1, 1, 1}, 6.1e-6, false},      // 4 expected per branch
		{[]int{5, 5}, 1, true},                   // 5 expected: enough
		{[]int{7}, 1, false},                     // one branch: no test
		{[]int{0, 0}, 1, false},                  // no flows
		{[]int{25, 25, 25, 25, 25, 25}, 1, true}, // even
	}
	for _, tc := range tests {
		p, enough := uniformityPValue(tc.counts)
		if math.Abs(p-tc.p) > 0.05*tc.p || enough != tc.enough {
			t.Errorf("%v: p %.4g enough %v, want %.4g %v", tc.counts, p, enough, tc.p, tc.enough)
		}
	}
}
