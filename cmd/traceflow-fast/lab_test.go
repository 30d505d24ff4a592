package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/internal/lab"
)

// binary builds the command once per test process.
var binary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "traceflow-fast-test")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "traceflow-fast")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", errors.New(string(out))
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if bin, err := binary(); err == nil {
		os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

// result is the part of a JSON line the lab tests check, decoded here
// independently of the analysis package.
type result struct {
	Destination string       `json:"destination"`
	ProbesSent  int          `json:"probes_sent"`
	Replies     int          `json:"replies"`
	Flows       []formatFlow `json:"flows"`
	UniquePaths []struct {
		Hops    []*string `json:"hops"`
		PathIDs []int     `json:"path_ids"`
	} `json:"unique_paths"`
	Summary string `json:"summary"`
	MDA     *struct {
		Confidence float64 `json:"confidence"`
		Complete   bool    `json:"complete"`
	} `json:"mda"`
}

type runOutput struct {
	stdout, stderr string
	code           int
}

// traceIn runs the command in the lab's prober namespace. A run that has
// not ended in 3 minutes is killed: a hang, not a slow machine (the lossy
// and rate-limited labs pace their probes, and a loaded machine has taken
// 45 s over a scan that takes 5 alone).
func traceIn(t *testing.T, l *lab.Lab, args ...string) runOutput {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := l.Command(ctx, "prober", bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return runOutput{stdout.String(), stderr.String(), code}
}

func parseResults(t *testing.T, out string) []result {
	t.Helper()
	var rs []result
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("bad JSON line %q: %v", line, err)
		}
		rs = append(rs, r)
	}
	return rs
}

// pathSet renders distinct paths as sorted strings of space-separated hops.
func pathSet(r result) []string {
	var out []string
	for _, u := range r.UniquePaths {
		var hops []string
		for _, h := range u.Hops {
			if h == nil {
				hops = append(hops, "*")
			} else {
				hops = append(hops, *h)
			}
		}
		out = append(out, strings.Join(hops, " "))
	}
	sort.Strings(out)
	return out
}

func expectedSet(l *lab.Lab) []string {
	var out []string
	for _, p := range l.ExpectedPaths() {
		out = append(out, strings.Join(p, " "))
	}
	sort.Strings(out)
	return out
}

// TestLabTopologies traces each lab topology and asserts exactly the set of
// distinct paths its routes imply.
func TestLabTopologies(t *testing.T) {
	lab.RequireRoot(t)
	for _, tc := range []struct {
		topo  string
		paths string
	}{
		{"line", "4"},
		{"diamond4", "16"},
		{"unequal", "16"},
		// --paths auto (the default): the MDA rule decides how many.
		{"diamond4", "auto"},
		{"unequal", "auto"},
		{"nested", "auto"},
		{"diamond8", "auto"},
	} {
		t.Run(tc.topo+"/"+tc.paths, func(t *testing.T) {
			t.Parallel()
			l := lab.Up(t, tc.topo)
			out := traceIn(t, l, "--paths", tc.paths, "--format", "json", "--wait", waitAnswered, lab.Destination)
			if out.code != exitOK {
				t.Fatalf("exit %d, stderr:\n%s", out.code, out.stderr)
			}
			rs := parseResults(t, out.stdout)
			if len(rs) != 1 {
				t.Fatalf("%d JSON lines, want 1", len(rs))
			}
			r := rs[0]
			maxRTT := rttBound(t, out.stderr)
			want := expectedSet(l)
			if got := pathSet(r); !slices.Equal(got, want) {
				t.Fatalf("distinct paths\n got %q\nwant %q", got, want)
			}
			paths := len(r.Flows)
			if tc.paths != "auto" && strconv.Itoa(paths) != tc.paths {
				t.Fatalf("%d flows, want %s", paths, tc.paths)
			}
			if tc.paths == "auto" {
				if r.MDA == nil || !r.MDA.Complete || r.MDA.Confidence != 95 {
					t.Errorf("mda = %+v, want complete at 95%%", r.MDA)
				}
				// Every row is complete: probed, or implied by the
				// search (inferred, with no RTT), up to the destination.
				probed := 0
				for _, f := range r.Flows {
					for _, h := range f.Hops {
						if !h.Inferred {
							probed++
						}
					}
				}
				if probed > r.ProbesSent {
					t.Errorf("%d probed hops but %d probes sent", probed, r.ProbesSent)
				}
				t.Logf("%s: %d probes, %d path IDs", tc.topo, r.ProbesSent, len(r.Flows))
			}
			for _, f := range r.Flows {
				if !f.Reached || f.ReachedTTL != len(f.Hops) {
					t.Errorf("path ID %d: reached=%v at %d with %d hops", f.PathID, f.Reached, f.ReachedTTL, len(f.Hops))
				}
				if f.SrcPort != 33452+f.PathID {
					t.Errorf("path ID %d: source port %d", f.PathID, f.SrcPort)
				}
				for _, h := range f.Hops {
					if h.Inferred && h.Addr != nil && h.RTT == nil {
						continue
					}
					if h.Addr == nil || h.RTT == nil || *h.RTT <= 0 || *h.RTT > maxRTT {
						t.Errorf("path ID %d TTL %d: addr %v rtt %v", f.PathID, h.TTL, h.Addr, h.RTT)
					}
				}
			}
			wantSummary := strconv.Itoa(len(want)) + " distinct paths among " + strconv.Itoa(paths) + " path IDs"
			if len(want) == 1 {
				wantSummary = "1 distinct path among " + strconv.Itoa(paths) + " path IDs"
			}
			if r.Summary != wantSummary {
				t.Errorf("summary %q, want %q", r.Summary, wantSummary)
			}
			// No probe above a path's distance except those in flight when
			// the destination answered (at most --gap-limit per path).
			maxProbes := 0
			for _, f := range r.Flows {
				maxProbes += f.ReachedTTL + 5
			}
			if r.ProbesSent > maxProbes {
				t.Errorf("%d probes sent, more than distance + gap limit per path (%d)", r.ProbesSent, maxProbes)
			}

			// The table formats show the same paths and the summary line.
			for _, format := range []string{"vert", "horiz"} {
				out := traceIn(t, l, "--paths", tc.paths, "--format", format, "--dedup", lab.Destination)
				if out.code != exitOK {
					t.Fatalf("%s: exit %d: %s", format, out.code, out.stderr)
				}
				lines := strings.Split(strings.TrimSpace(out.stdout), "\n")
				if last := lines[len(lines)-1]; !strings.HasPrefix(last, strconv.Itoa(len(want))+" distinct path") {
					t.Errorf("%s: last line %q, want the summary of %d paths", format, last, len(want))
				}
				for _, p := range l.ExpectedPaths() {
					for _, hop := range p {
						if !strings.Contains(out.stdout, hop) {
							t.Errorf("%s output lacks hop %s:\n%s", format, hop, out.stdout)
						}
					}
				}
			}
		})
	}
}

var doneLine = regexp.MustCompile(`msg=done .*replies=(\d+) received=(\d+) .*unmatched=(\d+)`)

// TestLabConcurrentRunsSeeOnlyTheirReplies runs two traces of the same
// destination, with the same ports, at the same time: the kernel filter of
// each must pass only its own run's replies.
func TestLabConcurrentRunsSeeOnlyTheirReplies(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.Up(t, "diamond4")
	var wg sync.WaitGroup
	outs := make([]runOutput, 2)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Several rounds each, so that the two runs overlap in time.
			outs[i] = traceIn(t, l, "--paths", "64", "--format", "json", "--wait", waitAnswered, lab.Destination, "--ttl", "8")
		}()
	}
	wg.Wait()
	for i, out := range outs {
		if out.code != exitOK {
			t.Fatalf("run %d: exit %d: %s", i, out.code, out.stderr)
		}
		m := doneLine.FindStringSubmatch(out.stderr)
		if m == nil {
			t.Fatalf("run %d: no summary log line in:\n%s", i, out.stderr)
		}
		replies, _ := strconv.Atoi(m[1])
		received, _ := strconv.Atoi(m[2])
		unmatched, _ := strconv.Atoi(m[3])
		r := parseResults(t, out.stdout)[0]
		if unmatched != 0 {
			t.Errorf("run %d: %d packets passed the filter that are not this run's", i, unmatched)
		}
		if received < replies || received > r.ProbesSent {
			t.Errorf("run %d: received %d packets for %d probes and %d replies", i, received, r.ProbesSent, replies)
		}
		if got, want := pathSet(r), expectedSet(l); !slices.Equal(got, want) {
			t.Errorf("run %d: paths %q, want %q", i, got, want)
		}
	}
}

// TestLabErrors checks the one-line errors of the command.
func TestLabErrors(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.Up(t, "line")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"no-such-host.invalid"}, `cannot resolve "no-such-host.invalid"`},
		{[]string{"--interface", "nope0", lab.Destination}, "nope0"},
		{[]string{"--source", "192.0.2.77", lab.Destination}, "192.0.2.77"},
		{[]string{"--ttl", "65", lab.Destination}, "--ttl 65"},
		{[]string{lab.Destination, "--format", "xml"}, `--format "xml"`},
	} {
		out := traceIn(t, l, tc.args...)
		if out.code != exitError {
			t.Errorf("%v: exit %d, want %d", tc.args, out.code, exitError)
		}
		lines := strings.Split(strings.TrimSpace(out.stderr), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("%v: stderr %q, want one line containing %q", tc.args, out.stderr, tc.want)
		}
		if strings.Contains(out.stderr, "goroutine") {
			t.Errorf("%v: stack trace on stderr", tc.args)
		}
	}
}
