package fleet

import (
	"github.com/traceflow-fast/traceflow-fast/targets"
)

// Split deals the addresses of set among n agents as zmap deals a scan
// among its shards: in the order of the permutation seed gives (the order
// a local run with that seed probes them in), the k-th address goes to
// agent k mod n. The shares are disjoint, differ in size by one at most,
// and together hold every address of set once.
func Split(set *targets.Set, seed uint64, n int) [][]string {
	shards := make([][]string, n)
	if n <= 0 {
		return shards
	}
	for i := range shards {
		shards[i] = make([]string, 0, set.Len()/uint64(n)+1)
	}
	perm := targets.NewPermutation(set.Len(), seed)
	for k := 0; ; k++ {
		i, ok := perm.Next()
		if !ok {
			break
		}
		shards[k%n] = append(shards[k%n], set.At(i).String())
	}
	return shards
}

// Addrs returns the addresses of set, in increasing order, as a
// Request's targets.
func Addrs(set *targets.Set) []string {
	out := make([]string, set.Len())
	for i := range out {
		out[i] = set.At(uint64(i)).String()
	}
	return out
}
