package analysis

import (
	"bufio"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var updateMDAGolden = flag.Bool("update-mda-golden", false, "rewrite testdata/mdaplan_golden.txt from the current planner")

const mdaGoldenFile = "testdata/mdaplan_golden.txt"

// mdaGoldenRun is one configuration of the golden searches, over seeds
// 1..mdaGoldenSeeds.
type mdaGoldenRun struct {
	topo     *simTopo
	conf     float64
	oneHop   bool
	maxPaths int
}

const mdaGoldenSeeds = 20

func (r mdaGoldenRun) String() string {
	return fmt.Sprintf("%s conf=%.2f onehop=%v maxpaths=%d", r.topo.name, r.conf, r.oneHop, r.maxPaths)
}

func mdaGoldenRuns() []mdaGoldenRun {
	var runs []mdaGoldenRun
	for _, topo := range simTopologies() {
		for _, conf := range []float64{0.95, 0.99} {
			for _, oneHop := range []bool{true, false} {
				// 16 path IDs run out on the wider topologies.
				for _, maxPaths := range []int{simMaxPaths, 16} {
					runs = append(runs, mdaGoldenRun{topo, conf, oneHop, maxPaths})
				}
			}
		}
	}
	return runs
}

// mdaDecisions writes to w every decision of an adaptive search of topo
// with seed: each round's plan, and what FillInferred makes of the trace
// after each round. The state is rebuilt from the probes before each
// round, reusing its rows, as the prober does.
func mdaDecisions(w io.Writer, r mdaGoldenRun, seed uint64) {
	s := &simRun{topo: r.topo, seed: seed, rng: rand.New(rand.NewPCG(seed, 0x5eed))}
	col := NewCollector(simDst, "sim", netip.MustParseAddr("192.0.2.100"), r.maxPaths, simMaxTTL, 33000, 33434)
	obs := map[Cell]MDAObs{}
	maxID := 0
	send := func(p, ttl int) MDAObs {
		o := s.probe(p, ttl)
		obs[Cell{p, ttl}] = o
		maxID = max(maxID, p)
		col.Sent(p, ttl)
		if o.Addr.IsValid() {
			typ, code := uint8(11), uint8(0)
			switch {
			case o.Reached:
				typ, code = icmpUnreachable, codePortUnreachable
			case o.Stop:
				typ, code = icmpUnreachable, 13
			}
			col.Reply(p, ttl, o.Addr, time.Millisecond, typ, code, o.Reached)
		}
		return o
	}
	answered, sent := 0, 0
round0:
	for {
		hi := min(answered+simGap, simMaxTTL)
		if hi <= sent {
			break
		}
		for ttl := sent + 1; ttl <= hi; ttl++ {
			o := send(1, ttl)
			if o.Addr.IsValid() {
				answered = max(answered, ttl)
			}
			if o.Reached {
				break round0
			}
		}
		sent = hi
	}
	st := &MDAState{}
	rebuild := func() {
		*st = MDAState{Flows: st.Flows[:0], MaxTTL: simMaxTTL, GapLimit: simGap, OneFirstHop: r.oneHop, Rounds: st.Rounds}
		for p := 1; p <= maxID; p++ {
			for ttl := 1; ttl <= simMaxTTL; ttl++ {
				if o, ok := obs[Cell{p, ttl}]; ok {
					st.Set(p, ttl, o)
				}
			}
		}
	}
	fill := func() {
		rebuild()
		tr := col.Trace(time.Time{}, time.Time{}, false)
		fmt.Fprintf(w, "  partial %v\n", FillInferred(tr, st, r.conf))
		for _, f := range tr.Flows {
			fmt.Fprintf(w, "  %d %v/%d:", f.PathID, f.Reached, f.ReachedTTL)
			for _, h := range f.Hops {
				fmt.Fprintf(w, " %d=%v/%d/%d", h.TTL, h.Addr, h.ICMPType, h.ICMPCode)
				if h.Inferred {
					fmt.Fprint(w, "~")
				}
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintf(w, "seed %d\n", seed)
	for {
		rebuild()
		cells, complete := PlanMDA(st, r.conf, r.maxPaths)
		fmt.Fprintf(w, "round %d complete=%v %v\n", st.Rounds, complete, cells)
		if len(cells) == 0 || st.Rounds > 2*MDAMaxRounds {
			break
		}
		st.Rounds++
		for _, c := range cells {
			send(c.PathID, c.TTL)
		}
		fill()
	}
}

// mdaGolden returns a digest of the decisions of each golden run, one line
// per configuration.
func mdaGolden() []string {
	var lines []string
	for _, r := range mdaGoldenRuns() {
		h := sha256.New()
		for seed := uint64(1); seed <= mdaGoldenSeeds; seed++ {
			mdaDecisions(h, r, seed)
		}
		lines = append(lines, fmt.Sprintf("%s %x", r, h.Sum(nil)[:12]))
	}
	return lines
}

// TestMDAGolden checks that the planner makes the decisions recorded in
// testdata: the same plans, in the same order, and the same rows filled,
// over the simulated topologies. A change of the planner's behaviour is
// recorded with -update-mda-golden.
func TestMDAGolden(t *testing.T) {
	got := mdaGolden()
	if *updateMDAGolden {
		if err := os.WriteFile(filepath.FromSlash(mdaGoldenFile), []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	f, err := os.Open(filepath.FromSlash(mdaGoldenFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var want []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		want = append(want, sc.Text())
	}
	if len(want) != len(got) {
		t.Fatalf("%d golden runs, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("decisions differ: got %q, want %q", got[i], want[i])
		}
	}
}
