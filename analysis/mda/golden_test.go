package mda

import (
	"bufio"
	"cmp"
	"crypto/sha256"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var updateMDAGolden = flag.Bool("update-mda-golden", false, "rewrite testdata/golden.txt from the current planner")

const mdaGoldenFile = "testdata/golden.txt"

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

// mdaRound is one round of a golden search: the plan, as planString
// writes it, and the rows FillInferred makes of the trace once the plan's
// probes are answered (empty after the last round, which plans nothing).
type mdaRound struct {
	plan string
	fill string
}

// mdaDecisions returns every decision of an adaptive search of r's
// topology with seed: each round's plan, and what FillInferred makes of
// the trace after each round. The state's rows are the Collector's, handed
// out again before each round, as in the prober.
func mdaDecisions(r mdaGoldenRun, seed uint64) []mdaRound {
	s := &simRun{topo: r.topo, seed: seed, rng: rand.New(rand.NewPCG(seed, 0x5eed))}
	col := newSimCollector(r.maxPaths)
	answered, sent := 0, 0
round0:
	for {
		hi := min(answered+simGap, simMaxTTL)
		if hi <= sent {
			break
		}
		for ttl := sent + 1; ttl <= hi; ttl++ {
			o := s.send(col, 1, ttl)
			if o.addr.IsValid() {
				answered = max(answered, ttl)
			}
			if o.reached {
				break round0
			}
		}
		sent = hi
	}
	st := &State{MaxTTL: simMaxTTL, GapLimit: simGap, OneFirstHop: r.oneHop}
	rebuild := func() { st.Rows = col.Rows(st.Rows[:0]) }
	fill := func() string {
		rebuild()
		tr := col.Trace(time.Time{}, time.Time{}, false)
		var b strings.Builder
		fmt.Fprintf(&b, "partial %v\n", FillInferred(tr, st, r.conf))
		for _, f := range tr.Flows {
			fmt.Fprintf(&b, "%d %v/%d:", f.PathID, f.Reached, f.ReachedTTL)
			for _, h := range f.Hops {
				fmt.Fprintf(&b, " %d=%v/%d/%d", h.TTL, h.Addr, h.ICMPType, h.ICMPCode)
				if h.Inferred {
					b.WriteString("~")
				}
			}
			b.WriteString("\n")
		}
		return b.String()
	}
	var rounds []mdaRound
	for {
		rebuild()
		cells, complete := Plan(st, r.conf, r.maxPaths)
		rounds = append(rounds, mdaRound{plan: planString(cells, complete)})
		if len(cells) == 0 || st.Rounds > 2*MaxRounds {
			break
		}
		st.Rounds++
		for _, c := range cells {
			s.send(col, c.PathID, c.TTL)
		}
		rounds[len(rounds)-1].fill = fill()
	}
	return rounds
}

// planString writes a plan in the golden file's words: "complete" or
// "incomplete" when it is empty, else for each TTL, ascending, "TTL:"
// and the path IDs probed there, as ranges ("2:2-6,9 3:2-6"). A plan not
// ordered by path ID, then TTL, is written as such, so that it differs
// from any plan recorded.
func planString(cells []Cell, complete bool) string {
	if len(cells) == 0 {
		if complete {
			return "complete"
		}
		return "incomplete"
	}
	if !slices.IsSortedFunc(cells, func(x, y Cell) int { return cmp.Or(x.PathID-y.PathID, x.TTL-y.TTL) }) {
		return fmt.Sprintf("unordered %v", cells)
	}
	var b strings.Builder
	for ttl := 1; ttl <= simMaxTTL; ttl++ {
		var ids []int
		for _, c := range cells {
			if c.TTL == ttl {
				ids = append(ids, c.PathID)
			}
		}
		if len(ids) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d:", ttl)
		for i := 0; i < len(ids); {
			j := i
			for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
				j++
			}
			if i > 0 {
				b.WriteByte(',')
			}
			if j > i {
				fmt.Fprintf(&b, "%d-%d", ids[i], ids[j])
			} else {
				fmt.Fprintf(&b, "%d", ids[i])
			}
			i = j + 1
		}
	}
	return b.String()
}

// fillDigest is the golden file's short digest of the rows filled after a
// round: the rows are too many to keep (several megabytes over all the
// searches), and the test prints them when they differ.
func fillDigest(fill string) string {
	sum := sha256.Sum256([]byte(fill))
	return fmt.Sprintf("%x", sum[:4])
}

// mdaGoldenHeader opens the golden file.
const mdaGoldenHeader = `# The decisions of the MDA planner over the simulated topologies (see
# TestMDAGolden): per search, a line naming it, then a line per round: its
# number, the plan (TTL:path IDs, or complete/incomplete when it asks for
# nothing), and a digest of the rows FillInferred makes once the plan's
# probes are answered. Rewrite with: go test -run TestMDAGolden -update-mda-golden
`

// mdaGolden returns the golden file's content for the current planner:
// the header, then per search a block of lines.
func mdaGolden() [][]string {
	var blocks [][]string
	for _, r := range mdaGoldenRuns() {
		for seed := uint64(1); seed <= mdaGoldenSeeds; seed++ {
			block := []string{fmt.Sprintf("%s seed=%d", r, seed)}
			for i, rd := range mdaDecisions(r, seed) {
				line := fmt.Sprintf("%d %s", i, rd.plan)
				if rd.fill != "" {
					line += " fill=" + fillDigest(rd.fill)
				}
				block = append(block, line)
			}
			blocks = append(blocks, block)
		}
	}
	return blocks
}

// readMDAGolden returns the blocks of the golden file, by their first
// line, and that line of each in order.
func readMDAGolden(t *testing.T) (map[string][]string, []string) {
	f, err := os.Open(filepath.FromSlash(mdaGoldenFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blocks := map[string][]string{}
	var order []string
	cur := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#") || line == "":
		case line[0] >= '0' && line[0] <= '9':
			blocks[cur] = append(blocks[cur], line)
		default:
			cur = line
			order = append(order, cur)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks, order
}

// TestMDAGolden checks that the planner makes the decisions recorded in
// testdata: the same plans, in the same order, and the same rows filled,
// over the simulated topologies. A difference is reported with the search
// and round it is in, the plans recorded and made, and the rows filled
// now. A change of the planner's behaviour is recorded with
// -update-mda-golden.
func TestMDAGolden(t *testing.T) {
	got := mdaGolden()
	if *updateMDAGolden {
		var b strings.Builder
		b.WriteString(mdaGoldenHeader)
		for _, block := range got {
			b.WriteString(strings.Join(block, "\n") + "\n")
		}
		if err := os.WriteFile(filepath.FromSlash(mdaGoldenFile), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, order := readMDAGolden(t)
	if len(order) != len(got) {
		t.Errorf("%d searches recorded, %d made", len(order), len(got))
	}
	failed := 0
	for _, block := range got {
		name := block[0]
		if msg := mdaGoldenDiff(name, want[name], block[1:]); msg != "" {
			if failed++; failed <= 5 {
				t.Error(msg)
			}
		}
	}
	if failed > 5 {
		t.Errorf("and %d more searches differ", failed-5)
	}
}

// mdaGoldenDiff describes the first round where the search name made
// other decisions (got) than recorded (want); "" if none.
func mdaGoldenDiff(name string, want, got []string) string {
	if want == nil {
		return fmt.Sprintf("%s: not recorded", name)
	}
	for i := range max(len(want), len(got)) {
		w, g := "(none)", "(none)"
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w == g {
			continue
		}
		msg := fmt.Sprintf("%s, round %d:\n\trecorded %s\n\tmade     %s", name, i, w, g)
		wp, _, _ := strings.Cut(w, " fill=")
		gp, _, _ := strings.Cut(g, " fill=")
		if wp == gp {
			// The same plan, other rows: show them.
			r, seed := mdaGoldenSearch(name)
			msg += "\n\tthe rows filled after it now:\n" + mdaDecisions(r, seed)[i].fill
		}
		return msg
	}
	return ""
}

// mdaGoldenSearch returns the run and seed that a golden block is named
// after.
func mdaGoldenSearch(name string) (mdaGoldenRun, uint64) {
	for _, r := range mdaGoldenRuns() {
		for seed := uint64(1); seed <= mdaGoldenSeeds; seed++ {
			if fmt.Sprintf("%s seed=%d", r, seed) == name {
				return r, seed
			}
		}
	}
	panic("no golden search " + name)
}
