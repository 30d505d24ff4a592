package monitor

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/tracer"
)

// samePaths, the shortcut that spares the diff on most runs, agrees with
// the diff: without hops to ignore, two runs have the same paths exactly
// when analysis.DiffTraces finds no change between them.
func TestSamePathsAgreesWithDiff(t *testing.T) {
	dst := netip.MustParseAddr("10.99.0.1")
	pool := []string{
		"10.0.0.1 10.1.1.2 10.2.1.2 10.99.0.1",
		"10.0.0.1 10.1.2.2 10.2.2.2 10.99.0.1",
		"10.0.0.1 10.1.3.2 10.2.3.2 10.99.0.1",
		"10.0.0.1 * 10.2.3.2 10.99.0.1",
		"10.0.0.1 10.1.3.2 10.2.3.2 10.3.3.2 10.99.0.1",
		"10.0.0.1 10.1.3.2",
		"10.0.0.1 10.1.3.2 *",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	random := func() *snapshot {
		s := &snapshot{}
		id := 1
		for _, i := range rng.Perm(len(pool))[:1+rng.IntN(3)] {
			p := snapshotPath{}
			for _, h := range strings.Fields(pool[i]) {
				a, _ := netip.ParseAddr(h) // "*": invalid, silent
				p.Hops = append(p.Hops, a)
			}
			p.Reached = p.Hops[len(p.Hops)-1] == dst
			s.Reached = s.Reached || p.Reached
			for range 1 + rng.IntN(3) {
				p.PathIDs = append(p.PathIDs, id)
				id++
			}
			s.Paths = append(s.Paths, p)
		}
		return s
	}
	tg := tracer.Target{Addr: dst}
	agreed, same := 0, 0
	for range 2000 {
		a, b := random(), random()
		if rng.IntN(4) == 0 {
			b = a.reordered(rng) // the same paths, other path IDs and order
		}
		unchanged := diff(a, b, tg, nil).Status == analysis.Unchanged
		if a.samePaths(b) != unchanged {
			t.Fatalf("samePaths %v, diff unchanged %v:\n%+v\n%+v", a.samePaths(b), unchanged, a, b)
		}
		agreed++
		if unchanged {
			same++
		}
	}
	if same < 300 || same == agreed {
		t.Errorf("%d of %d pairs the same: the test does not try both cases", same, agreed)
	}
}

// reordered returns s with its paths in another order and other path IDs.
func (s *snapshot) reordered(rng *rand.Rand) *snapshot {
	o := &snapshot{Reached: s.Reached}
	id := 100
	for _, i := range rng.Perm(len(s.Paths)) {
		p := s.Paths[i]
		p.PathIDs = []int{id}
		id++
		o.Paths = append(o.Paths, p)
	}
	return o
}
