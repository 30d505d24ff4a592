package fleet

import (
	"context"
	"slices"
	"testing"

	"github.com/traceflow-fast/traceflow-fast/targets"
)

// Split's shares are disjoint, balanced and cover the set, in the
// permutation's order, whatever the number of agents.
func TestSplit(t *testing.T) {
	b := targets.NewBuilder(targets.Options{MaxPrefix: 1 << 16})
	for _, a := range []string{"10.0.0.0/22", "10.9.0.7", "192.0.2.0/28"} {
		if err := b.AddArg(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	set, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	all := Addrs(set)
	if uint64(len(all)) != set.Len() || len(all) != 1022+1+14 {
		t.Fatalf("Addrs: %d addresses, the set has %d", len(all), set.Len())
	}
	for _, n := range []int{1, 2, 3, 7, 1037, 2000} {
		shards := Split(set, 42, n)
		seen := map[string]int{}
		for i, sh := range shards {
			if len(sh) < len(all)/n || len(sh) > len(all)/n+1 {
				t.Errorf("n=%d: shard %d holds %d of %d", n, i, len(sh), len(all))
			}
			for _, a := range sh {
				seen[a]++
			}
		}
		for _, a := range all {
			if seen[a] != 1 {
				t.Errorf("n=%d: %s in %d shards", n, a, seen[a])
			}
		}
		if len(seen) != len(all) {
			t.Errorf("n=%d: %d addresses in the shards, want %d", n, len(seen), len(all))
		}
	}
	// The order is the seeded permutation's: shard 0 of 1 is the order a
	// local run with the seed probes in, and the same seed deals the same.
	one := Split(set, 42, 1)[0]
	perm := targets.NewPermutation(set.Len(), 42)
	for k := range one {
		i, _ := perm.Next()
		if one[k] != set.At(i).String() {
			t.Fatalf("position %d: %s, the permutation gives %s", k, one[k], set.At(i))
		}
	}
	if a, b := Split(set, 7, 3), Split(set, 7, 3); !slices.EqualFunc(a, b, slices.Equal) {
		t.Error("the same seed dealt differently")
	}
	if a, b := Split(set, 7, 3), Split(set, 8, 3); slices.EqualFunc(a, b, slices.Equal) {
		t.Error("two seeds dealt the same")
	}
}
