package tui

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// simRun is a whole run of the engine through a simulated network, with
// a State as its observer, fed the results as a Session feeds them.
type simRun struct {
	net   *tracertest.Network
	spec  probe.Spec
	state *State
	trace *analysis.Trace
}

func simulate(t testing.TB, topology string, cfg tracer.Config) *simRun {
	t.Helper()
	topo, err := tracertest.ByName(topology)
	if err != nil {
		t.Fatal(err)
	}
	n, err := tracertest.NewNetwork(topo, &tracertest.Options{Seed: 1, Filter: true})
	if err != nil {
		t.Fatal(err)
	}
	r := &simRun{net: n, state: NewState()}
	cfg.Network, cfg.Clock, cfg.Observer = n, n.Clock(), r.state
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tr, err := tracer.Open(ctx, cfg, tracer.Addrs(tracertest.DstAddr))
	if err != nil {
		t.Fatal(err)
	}
	r.spec = tr.Spec()
	if _, err := tr.Run(ctx, tracer.SinkFunc(func(tr *analysis.Trace) error {
		r.trace = tr
		r.state.Result(tr)
		return nil
	})); err != nil || r.trace == nil {
		t.Fatalf("Run: %v, result %v", err, r.trace != nil)
	}
	return r
}

// truth returns the addresses of the paths the simulator's path IDs
// 1..paths take, as the screen writes them.
func (r *simRun) truth(t *testing.T, paths int) []string {
	t.Helper()
	spec := r.spec
	spec.Paths = paths
	ps, err := r.net.Paths(&spec, tracertest.DstAddr)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range ps {
		out = append(out, strings.TrimSuffix(p.String(), " !"))
	}
	slices.Sort(out)
	return out
}

// screenRow is a row as read back from the screen.
type screenRow struct {
	label string
	hops  map[int]string // by TTL: the address with its marks, "*" or "."
	names map[int]string // by TTL: what follows the address
	stats map[int]string // by TTL: the loss and average line
}

func (r *screenRow) path() string {
	var hops []string
	for ttl := 1; ttl <= len(r.hops); ttl++ {
		hops = append(hops, strings.Trim(r.hops[ttl], "<>"))
	}
	return strings.Join(hops, " ")
}

// readScreen scrolls the view over the whole of s with the keys, on a
// screen of width x height, and reads the rows back from the lines drawn.
func readScreen(t *testing.T, s *Snapshot, v View, width, height int) map[string]*screenRow {
	t.Helper()
	rows := make(map[string]*screenRow)
	for {
		for {
			lines := Render(s, v, width, height)
			checkSize(t, lines, width, height)
			readLines(t, lines, newLayout(Rows(s, v.ByID), width, height).cell, rows)
			left := v.Left
			v.Handle(KeyRight, s, width, height)
			if v.Left == left {
				break
			}
		}
		for v.Left > 0 {
			v.Handle(KeyLeft, s, width, height)
		}
		top := v.Top
		v.Handle(KeyPageDown, s, width, height)
		if v.Top == top {
			return rows
		}
	}
}

func checkSize(t *testing.T, lines []string, width, height int) {
	t.Helper()
	if len(lines) != height {
		t.Fatalf("%d lines on a screen of %d", len(lines), height)
	}
	for i, l := range lines {
		if len(l) > width {
			t.Fatalf("line %d is %d columns wide on a screen of %d: %q", i+1, len(l), width, l)
		}
	}
}

// readLines reads the rows of one screen: the TTLs of the columns from
// the third line, then three lines per row, up to the keys' line.
func readLines(t *testing.T, lines []string, cell int, rows map[string]*screenRow) {
	t.Helper()
	var ttls []int
	for _, f := range strings.Fields(lines[2])[1:] {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("TTL line %q", lines[2])
		}
		ttls = append(ttls, n)
	}
	for i := headLines; i+rowLines <= len(lines)-footLines; i += rowLines {
		label := strings.TrimSpace(pad(lines[i], labelWidth))
		if label == "" {
			break
		}
		r := rows[label]
		if r == nil {
			r = &screenRow{label: label, hops: make(map[int]string), names: make(map[int]string), stats: make(map[int]string)}
			rows[label] = r
		}
		for c, ttl := range ttls {
			f := strings.Fields(pad(cut(lines[i], labelWidth+c*cell), cell))
			if len(f) == 0 {
				continue // the row ends before this TTL
			}
			r.hops[ttl], r.names[ttl] = f[0], strings.Join(f[1:], " ")
			r.stats[ttl] = strings.TrimSpace(pad(cut(lines[i+1], labelWidth+c*cell), cell))
		}
	}
}

func cut(s string, n int) string {
	if len(s) < n {
		return ""
	}
	return s[n:]
}

func screenPaths(rows map[string]*screenRow) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.path())
	}
	slices.Sort(out)
	return out
}

// The screen shows the paths the simulator's flows take, one row per
// distinct path and, after d, one per path ID, while the run is in
// progress (the live answers) and once it is finished (its result), on a
// small screen (scrolled with the arrows) and a larger one.
func TestRenderShowsTheSimulatorsPaths(t *testing.T) {
	for _, topo := range []string{"diamond4", "nested", "two-diamonds", "unequal", "silent-branch"} {
		r := simulate(t, topo, tracer.Config{Paths: 16})
		want := r.truth(t, 16)
		final := r.state.Snapshot(0)
		live := *final
		live.Final = nil
		for _, size := range [][2]int{{80, 24}, {120, 40}} {
			for name, s := range map[string]*Snapshot{"live": &live, "final": final} {
				t.Run(topo+"/"+name+"/"+strconv.Itoa(size[0])+"x"+strconv.Itoa(size[1]), func(t *testing.T) {
					rows := readScreen(t, s, View{}, size[0], size[1])
					if got := screenPaths(rows); !slices.Equal(got, want) {
						t.Errorf("rows shown\n  %s\nwant the simulator's paths\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
					}
					v := View{}
					v.Handle(KeyToggle, s, size[0], size[1])
					ids := readScreen(t, s, v, size[0], size[1])
					checkPathIDs(t, r, ids)
				})
			}
		}
	}
}

// checkPathIDs compares the rows of path IDs with the path each takes in
// the simulator.
func checkPathIDs(t *testing.T, r *simRun, rows map[string]*screenRow) {
	t.Helper()
	if len(rows) != 16 {
		t.Errorf("%d rows of path IDs, want 16", len(rows))
	}
	for id := 1; id <= 16; id++ {
		row := rows["id "+strconv.Itoa(id)]
		ps, err := r.net.PathsOf(&r.spec, tracertest.DstAddr, id)
		if err != nil || len(ps) != 1 {
			t.Fatalf("path ID %d: %d paths, %v", id, len(ps), err)
		}
		want := strings.TrimSuffix(ps[0].String(), " !")
		if row == nil || row.path() != want {
			t.Errorf("path ID %d shown as %v, want %s", id, row, want)
			continue
		}
		checkStats(t, r, id, row)
	}
}

// checkStats compares the loss and average round trip shown for each hop
// of path ID id with the result of the run: a silent hop lost every
// probe, an answered one none (the simulator loses nothing) and its one
// answer's round trip is the hop's in the result.
func checkStats(t *testing.T, r *simRun, id int, row *screenRow) {
	t.Helper()
	var flow *analysis.Flow
	for i := range r.trace.Flows {
		if r.trace.Flows[i].PathID == id {
			flow = &r.trace.Flows[i]
		}
	}
	if flow == nil {
		t.Fatalf("path ID %d: not in the result", id)
	}
	for ttl, addr := range row.hops {
		want := "100%"
		if addr != "*" {
			want = "0% " + ms(flow.Hops[ttl-1].RTT)
		}
		if got := row.stats[ttl]; got != want {
			t.Errorf("path ID %d TTL %d (%s): %q shown, want %q", id, ttl, addr, got, want)
		}
	}
}

// With --paths auto, the finished destination's rows are its result's
// distinct paths, the hops the search implies included (shown without
// probes: "(inferred)" when none was sent).
func TestRenderAdaptiveRunShowsTheResult(t *testing.T) {
	for _, topo := range []string{"diamond8", "nested", "meshed"} {
		r := simulate(t, topo, tracer.Config{})
		var want []string
		for _, up := range r.trace.UniquePaths() {
			want = append(want, strings.TrimSuffix(tracertest.Path{Hops: up.Hops, Reached: up.Reached}.String(), " !"))
		}
		slices.Sort(want)
		rows := readScreen(t, r.state.Snapshot(0), View{}, 80, 24)
		if got := screenPaths(rows); !slices.Equal(got, want) {
			t.Errorf("%s: rows shown\n  %s\nwant the result's distinct paths\n  %s", topo, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
		// By path ID, each hop the search implied says so, and only
		// those: they were never probed.
		v := View{}
		v.Handle(KeyToggle, r.state.Snapshot(0), 120, 40)
		ids := readScreen(t, r.state.Snapshot(0), v, 120, 40)
		inferred := 0
		used := 0
		for _, f := range r.trace.Flows {
			used = max(used, f.PathID)
			row := ids["id "+strconv.Itoa(f.PathID)]
			if row == nil {
				t.Errorf("%s: path ID %d not shown", topo, f.PathID)
				continue
			}
			for i, h := range f.Hops {
				if got := row.stats[i+1] == "(inferred)"; got != h.Inferred {
					t.Errorf("%s: path ID %d TTL %d: %q shown, inferred %v", topo, f.PathID, i+1, row.stats[i+1], h.Inferred)
				}
				if h.Inferred {
					inferred++
				}
			}
		}
		if inferred == 0 {
			t.Errorf("%s: no hop inferred: the check above checked nothing", topo)
		}
		// A distinct path's hop is inferred when it is for all its path
		// IDs, as a path ID's is.
		for _, row := range Rows(r.state.Snapshot(0), false) {
			for i := range row.Hops {
				all := true
				for _, id := range row.PathIDs {
					all = all && r.trace.Flows[slices.IndexFunc(r.trace.Flows, func(f analysis.Flow) bool { return f.PathID == id })].Hops[i].Inferred
				}
				if row.Hops[i].Inferred != all {
					t.Errorf("%s: path IDs %v TTL %d: inferred %v, want %v", topo, row.PathIDs, i+1, row.Hops[i].Inferred, all)
				}
			}
		}
		truth := r.truth(t, used)
		for _, p := range want {
			if !slices.Contains(truth, p) {
				t.Errorf("%s: path %s shown, not one the simulator's path IDs 1..%d take", topo, p, used)
			}
		}
	}
}
