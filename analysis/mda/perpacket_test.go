package mda

import (
	"math"
	"testing"
)

func TestRepeats(t *testing.T) {
	for _, tc := range []struct {
		k    int
		conf float64
		want int
	}{
		{2, 0.95, 9}, {2, 0.99, 14}, {3, 0.95, 6}, {3, 0.99, 9}, {4, 0.95, 5}, {4, 0.99, 7}, {8, 0.95, 3}, {8, 0.99, 5},
		{1, 0.95, 9}, // one next hop seen: the narrowest balancer, 2
	} {
		r := Repeats(tc.k, tc.conf)
		if r != tc.want {
			t.Errorf("Repeats(%d, %g) = %d, want %d", tc.k, tc.conf, r, tc.want)
		}
		// r is the fewest that hold a balancer of width k to the
		// square of the stopping rule's risk.
		eps := (1 - tc.conf) * (1 - tc.conf)
		k := float64(max(tc.k, 2))
		if math.Pow(k, -float64(r)) > eps*(1+1e-9) || math.Pow(k, -float64(r-1)) <= eps {
			t.Errorf("Repeats(%d, %g) = %d: k^-r = %g, k^-(r-1) = %g, bound %g", tc.k, tc.conf, r, math.Pow(k, -float64(r)), math.Pow(k, -float64(r-1)), eps)
		}
	}
}
