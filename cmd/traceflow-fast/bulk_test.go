package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/internal/lab"
	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
)

// bulkPrefix is answered by the destination namespace of the bulk labs.
const bulkPrefix = "10.21.0.0/20"

// doneLog returns the fields of the final "done" log line.
func doneLog(t *testing.T, stderr string) map[string]string {
	t.Helper()
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.Contains(line, "msg=done") {
			continue
		}
		f := map[string]string{}
		for _, m := range regexp.MustCompile(`(\w+)=(\S+)`).FindAllStringSubmatch(line, -1) {
			f[m[1]] = m[2]
		}
		return f
	}
	t.Fatalf("no done line in stderr:\n%s", stderr)
	return nil
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// TestLabBulk traces every address of a /20 (minus what the target file
// excludes) through the 4-way diamond: every destination is reached with
// its 4 branches, traced once, and no path ID but the first probes beyond
// the destination.
func TestLabBulk(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.Up(t, "diamond4", lab.WithLocalPrefix(bulkPrefix))
	targets := writeFile(t, "targets.txt", `# the whole /20, some of it twice
10.21.0.0/20
10.21.3.7      # already in the prefix
10.21.15.0/24  # likewise

10.21.8.1
`)
	exclude := writeFile(t, "exclude.txt", "10.21.4.0/23 # never probed\n")
	out := traceIn(t, l, "-f", targets, "--exclude", exclude, "--paths", "16", "--rate", "200000",
		"--format", "json", "--seed", "7")
	if out.code != exitOK {
		t.Fatalf("exit %d\n%s", out.code, out.stderr)
	}
	rs := parseResults(t, out.stdout)
	want := 4094 - 512 // the /20 without network, broadcast and the excluded /23
	if len(rs) != want {
		t.Fatalf("%d results, want %d", len(rs), want)
	}
	excluded := netip.MustParsePrefix("10.21.4.0/23")
	seen := map[string]bool{}
	wantPaths := expectedSet(l)
	all, extra := 0, 0
	for _, r := range rs {
		a := netip.MustParseAddr(r.Destination)
		if seen[r.Destination] || excluded.Contains(a) || !netip.MustParsePrefix(bulkPrefix).Contains(a) {
			t.Fatalf("destination %s traced twice, excluded or out of the file", r.Destination)
		}
		seen[r.Destination] = true
		got := pathSet(r)
		// The hops are those of the diamond; only the last (the
		// destination) differs from lab.Destination.
		for i := range got {
			got[i] = strings.Replace(got[i], r.Destination, lab.Destination, 1)
			if !slices.Contains(wantPaths, got[i]) {
				t.Fatalf("%s: path %q is not one of the diamond's %v", r.Destination, got[i], wantPaths)
			}
		}
		// 16 flows hashed at random over 4 branches miss one with
		// probability 4 * (3/4)^16, about 4%.
		if len(got) == len(wantPaths) {
			all++
		}
		// Path ID 1 finds the distance (4) with TTLs 1..5 at once; the
		// other 15 probe exactly TTLs 1..4: 65 probes, and a retry for
		// each probe whose packet a loaded machine lost.
		extra += max(0, r.ProbesSent-(5+15*4))
	}
	if all < want*90/100 {
		t.Errorf("%d of %d destinations with all %d branches, want at least 90%%", all, want, len(wantPaths))
	}
	t.Logf("%d of %d destinations with all %d branches", all, want, len(wantPaths))
	d := doneLog(t, out.stderr)
	if atoi(t, d["reached"]) != want || atoi(t, d["destinations"]) != want || d["unmatched"] != "0" || d["dropped"] != "0" {
		t.Errorf("summary %v", d)
	}
	if extra > atoi(t, d["retries"]) {
		t.Errorf("%d probes sent beyond 65 per destination, more than the %s retries: a path ID probed beyond the destination",
			extra, d["retries"])
	}
	t.Logf("summary: %v", d)
}

// TestLabBulkInterrupted stops a slow scan with SIGINT once 16
// destinations are written: finished destinations are written, the ones in
// progress are written as partial, every line is whole JSON, and the exit
// status is 3.
func TestLabBulkInterrupted(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.Up(t, "diamond4", lab.WithLocalPrefix(bulkPrefix))
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*hung)
	defer cancel()
	// 3000 probes/s shared by 16 destinations at a time, 65 probes each:
	// about 0.35 s per destination, 90 s for the 4094.
	cmd := l.Command(ctx, "prober", bin, "--paths", "16", "--rate", "3000", "--window", "16",
		"--format", "json", bulkPrefix)
	w := startWatched(t, cmd)
	const before = 16
	w.await(t, w.stdout, before, "finished destinations", isComplete)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = w.wait(t)
	stdout, stderr := w.stdout.String(), w.stderr.String()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != exitInterrupted {
		t.Fatalf("exit %v, want %d\n%s", err, exitInterrupted, stderr)
	}
	var complete, partial int
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct {
			Destination string `json:"destination"`
			Partial     bool   `json:"partial"`
			Flows       []struct {
				Reached bool `json:"reached"`
			} `json:"flows"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		if r.Partial {
			partial++
		} else {
			complete++
			if len(r.Flows) != 16 {
				t.Errorf("%s complete with %d flows", r.Destination, len(r.Flows))
			}
		}
	}
	// The 16 written before the signal, and what finished until it came;
	// the scan stopped there: the destinations in progress (16 at most,
	// the window) are written as partial, and far from all were traced.
	if complete < before || partial == 0 || partial > 16 || complete+partial >= 4094 {
		t.Errorf("%d complete, %d partial", complete, partial)
	}
	d := doneLog(t, stderr)
	if atoi(t, d["partial"]) != partial || atoi(t, d["destinations"]) != 4094 {
		t.Errorf("summary %v, %d partial written", d, partial)
	}
	if !strings.Contains(stderr, "interrupted") {
		t.Errorf("stderr does not say it was interrupted:\n%s", stderr)
	}
	t.Logf("%d complete, %d partial", complete, partial)
}

// TestLabBulkBadTargets: a bad line names FILE:LINE and nothing is probed,
// unless --skip-invalid.
func TestLabBulkBadTargets(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.Up(t, "line")
	bad := writeFile(t, "bad.txt", fmt.Sprintf("%s\n10.99.0.0/33\n# fine\n10.0.0.0/8\n", lab.Destination))
	out := traceIn(t, l, "-f", bad, "--format", "json")
	if out.code != exitError || out.stdout != "" {
		t.Fatalf("exit %d, stdout %q", out.code, out.stdout)
	}
	for _, want := range []string{bad + ":2: ", bad + ":4: ", "--max-prefix"} {
		if !strings.Contains(out.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, out.stderr)
		}
	}
	if strings.Contains(out.stderr, "msg=tracing") {
		t.Error("probes were sent despite bad lines")
	}
	out = traceIn(t, l, "-f", bad, "--skip-invalid", "--format", "json")
	if out.code != exitOK {
		t.Fatalf("--skip-invalid: exit %d\n%s", out.code, out.stderr)
	}
	if rs := parseResults(t, out.stdout); len(rs) != 1 || rs[0].Destination != lab.Destination {
		t.Errorf("--skip-invalid traced %v", rs)
	}
	if strings.Count(out.stderr, "skipped invalid destination") != 2 {
		t.Errorf("want two warnings:\n%s", out.stderr)
	}
	// Standard input.
	bin, _ := binary()
	cmd := l.Command(context.Background(), "prober", bin, "-f", "-", "--format", "json")
	cmd.Stdin = strings.NewReader(lab.Destination + "\n")
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("-f -: %v", err)
	}
	if rs := parseResults(t, string(got)); len(rs) != 1 {
		t.Errorf("-f - traced %d destinations", len(rs))
	}
}

// TestLabProgressBar runs a scan on a terminal (script(1) gives it a
// pseudo-terminal): the bar is drawn on standard error, redrawn in place,
// and cleared at the end; results stay whole JSON lines.
func TestLabProgressBar(t *testing.T) {
	lab.RequireRoot(t)
	script := testenv.RequireTool(t, "script", "bsdutils")
	l := lab.Up(t, "diamond4", lab.WithLocalPrefix(bulkPrefix))
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.json")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// 62 destinations at 2000 probes/s: about 2 s, so the bar shows.
	cmdline := fmt.Sprintf("%s --paths 16 --rate 2000 --format json -o %s 10.21.0.0/26", bin, out)
	cmd := l.Command(ctx, "prober", script, "-qefc", cmdline, "/dev/null")
	tty, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, tty)
	}
	s := string(tty)
	if !strings.Contains(s, "\r\x1b[K[") || !strings.Contains(s, "/62 destinations") || !strings.Contains(s, "probes (") {
		t.Errorf("no progress bar on the terminal:\n%q", s)
	}
	if !strings.HasSuffix(strings.TrimRight(s, "\r\n"), "probes_per_s="+doneLog(t, s)["probes_per_s"]) {
		t.Errorf("the summary is not the last line:\n%q", s)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if rs := parseResults(t, string(b)); len(rs) != 62 {
		t.Errorf("%d results, want 62", len(rs))
	}
}
