package monitor_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/monitor"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// withoutA4 is the 4-way diamond with the branch of a4 withdrawn at r1.
func withoutA4() *tracertest.Topology {
	return tracertest.Diamond(4).Route("r1", "10.99.0.0/20", "a1", "a2", "a3")
}

// The state file carries what the monitor knows across restarts: a change
// seen once (of the three runs Confirm asks here) is confirmed by the
// first run after the restart when Confirm is 2, and a restart over
// unchanged paths reports nothing, not even baselines.
func TestStateAcrossRestarts(t *testing.T) {
	state := filepath.Join(t.TempDir(), "monitor.state")
	mon := func(confirm int) monitor.Config {
		return monitor.Config{Load: load(dst), Interval: 5 * time.Second, Confirm: confirm, State: state}
	}
	cfg := tracer.Config{Paths: 16}

	// 1: the baseline, a4 withdrawn, one run shows it; stop there.
	s := startSim(t, simOptions{topo: tracertest.Diamond(4), seed: 8, cfg: cfg, mon: mon(3),
		onEvent: func(s *sim, e event) { withdraw(t, s.net) }})
	s.await("a run that shows the change", func(_ []event, runs []run) bool {
		return len(runs) > 0 && runs[len(runs)-1].verdict == "unconfirmed"
	})
	if err := s.halt(); err != nil {
		t.Fatal(err)
	}
	var sf struct {
		Format       string `json:"format"`
		Destinations []struct {
			Destination string `json:"destination"`
			Known       struct {
				Paths []json.RawMessage `json:"paths"`
			} `json:"known"`
			Candidate *struct {
				Paths []json.RawMessage `json:"paths"`
			} `json:"candidate"`
			Seen int `json:"seen"`
		} `json:"destinations"`
	}
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &sf); err != nil {
		t.Fatal(err)
	}
	if len(sf.Destinations) != 1 || len(sf.Destinations[0].Known.Paths) != 4 || sf.Destinations[0].Candidate == nil ||
		len(sf.Destinations[0].Candidate.Paths) != 3 || sf.Destinations[0].Seen != 1 {
		t.Fatalf("state file:\n%s", b)
	}

	// 2: the first run confirms the change.
	s = startSim(t, simOptions{topo: withoutA4(), seed: 9, cfg: cfg, mon: mon(2)})
	s.await("the change", func(es []event, _ []run) bool { return len(es) > 0 })
	es, runs := s.snapshot()
	if es[0].Type != monitor.PathChange || es[0].PathsBefore != 4 || es[0].PathsAfter != 3 || es[0].Runs != 2 || len(runs) != 1 {
		t.Errorf("after the restart: events %+v, runs %v", es, runs)
	}
	if err := s.halt(); err != nil {
		t.Fatal(err)
	}

	// 3: nothing to report.
	s = startSim(t, simOptions{topo: withoutA4(), seed: 10, cfg: cfg, mon: mon(2)})
	s.await("three runs", func(_ []event, runs []run) bool { return len(runs) >= 3 })
	if es, runs := s.snapshot(); len(es) != 0 {
		t.Errorf("after a restart over the same paths: events %+v, runs %v", es, runs)
	}
}

// A state file that is not one, or is damaged, is refused in one line and
// left as it is.
func TestStateRefused(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct{ content, want string }{
		"garbage":   {"not json at all\n", "not a traceflow-fast monitor state file"},
		"empty":     {"", "not a traceflow-fast monitor state file"},
		"foreign":   {`{"groups":[{"name":"x","rules":[]}]}`, "not a traceflow-fast monitor state file"},
		"version":   {`{"format":"traceflow-fast monitor state","version":7,"destinations":[]}`, "version 7"},
		"truncated": {`{"format":"traceflow-fast monitor state","version":1,"destinations":[{"destination":"10.99.0.1","known":{"reached":tr`, "not a traceflow-fast monitor state file"},
		"unknown":   {`{"format":"traceflow-fast monitor state","version":1,"destinations":[],"extra":1}`, "damaged"},
		"no paths":  {`{"format":"traceflow-fast monitor state","version":1,"destinations":[{"destination":"10.99.0.1"}]}`, "damaged"},
		"bad addr":  {`{"format":"traceflow-fast monitor state","version":1,"destinations":[{"destination":"10.99.0.300","known":{"reached":true,"paths":[]}}]}`, "damaged"},
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
			if err := os.WriteFile(file, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := monitor.New(context.Background(), monitor.Config{Load: load(dst), State: file})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), file) || strings.Contains(err.Error(), "\n") {
				t.Errorf("New = %v, want one line naming %s: %s", err, file, c.want)
			}
			if b, _ := os.ReadFile(file); string(b) != c.content {
				t.Errorf("the file was changed to %q", b)
			}
		})
	}
	// A file that cannot be written where it is named fails at once, not
	// when the monitor stops.
	if _, err := monitor.New(context.Background(), monitor.Config{Load: load(dst), State: filepath.Join(dir, "no-such-dir", "state")}); err == nil ||
		!strings.Contains(err.Error(), "cannot be written") {
		t.Errorf("New with a state file in a missing directory: %v", err)
	}
	// A file that does not exist yet is an empty state.
	if _, err := monitor.New(context.Background(), monitor.Config{Load: load(dst), State: filepath.Join(dir, "new")}); err != nil {
		t.Errorf("New with a state file to create: %v", err)
	}
}
