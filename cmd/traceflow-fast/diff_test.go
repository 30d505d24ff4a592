package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/internal/cliargs"
	"github.com/traceflow-fast/traceflow-fast/internal/lab"
)

// The four paths of the diamond4 lab (scripts/lab.sh describe diamond4).
var diamondPaths = []string{
	"10.0.0.1 10.1.1.2 10.2.1.2 10.99.0.1",
	"10.0.0.1 10.1.2.2 10.2.2.2 10.99.0.1",
	"10.0.0.1 10.1.3.2 10.2.3.2 10.99.0.1",
	"10.0.0.1 10.1.4.2 10.2.4.2 10.99.0.1",
}

// traceOf builds a result towards dst whose path ID i+1 took paths[i] (hop
// addresses separated by spaces, * for silent).
func traceOf(dst string, paths ...string) *analysis.Trace {
	d := netip.MustParseAddr(dst)
	tr := &analysis.Trace{Destination: d, Name: dst, Source: netip.MustParseAddr(lab.ProberAddr), Protocol: "udp", MaxTTL: 30,
		Start: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	tr.End = tr.Start.Add(time.Second)
	for i, p := range paths {
		f := analysis.Flow{PathID: i + 1, SrcPort: uint16(33453 + i), DstPort: 33452}
		for j, h := range strings.Fields(p) {
			hop := analysis.Hop{TTL: j + 1}
			if h != "*" {
				hop.Addr, hop.RTT, hop.ICMPType = netip.MustParseAddr(h), time.Millisecond, 11
			}
			f.Hops = append(f.Hops, hop)
		}
		if n := len(f.Hops); n > 0 && f.Hops[n-1].Addr == d {
			f.Reached, f.ReachedTTL = true, n
			f.Hops[n-1].ICMPType, f.Hops[n-1].ICMPCode = 3, 3
		}
		tr.Flows = append(tr.Flows, f)
	}
	return tr
}

// writeResult writes traces as a --format json result file.
func writeResult(t *testing.T, name string, traces ...*analysis.Trace) string {
	t.Helper()
	var b bytes.Buffer
	for _, tr := range traces {
		if err := analysis.WriteJSON(&b, tr, analysis.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	return writeFile(t, name, b.String())
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func runCmd(args ...string) runOutput {
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"traceflow-fast"}, args...), &stdout, &stderr)
	return runOutput{stdout.String(), stderr.String(), code}
}

func TestDiffCommand(t *testing.T) {
	p := diamondPaths
	before := writeResult(t, "before.jsonl", traceOf("10.99.0.1", p[0], p[1], p[2], p[3], p[0], p[1], p[2], p[3]))
	// A reboot of r1 re-seeds its hash: the same paths, other path IDs.
	reshuffled := writeResult(t, "reshuffled.jsonl", traceOf("10.99.0.1", p[3], p[1], p[1], p[0], p[2], p[0], p[3], p[2]))
	// r1 lost its next hop 10.1.4.2.
	lost := writeResult(t, "lost.jsonl", traceOf("10.99.0.1", p[0], p[1], p[2], p[0], p[1], p[2], p[0], p[1]))

	out := runCmd("diff", before, reshuffled)
	if out.code != exitDiffSame || out.stderr != "" {
		t.Errorf("reshuffled: exit %d, stderr %q", out.code, out.stderr)
	}
	if want := "10.99.0.1: unchanged, 4 distinct paths\nno change (1 destination)\n"; out.stdout != want {
		t.Errorf("reshuffled: output\n%s\nwant\n%s", out.stdout, want)
	}

	out = runCmd("diff", before, lost)
	if out.code != exitDiffChanged || out.stderr != "" {
		t.Errorf("lost: exit %d, stderr %q", out.code, out.stderr)
	}
	want := "10.99.0.1: changed: 4 before -> 3 after distinct paths (3 unchanged)\n" +
		"  - removed path: 10.0.0.1 10.1.4.2 10.2.4.2 10.99.0.1 (path IDs 4,8)\n" +
		"1 of 1 destinations changed\n"
	if out.stdout != want {
		t.Errorf("lost: output\n%s\nwant\n%s", out.stdout, want)
	}

	// Flags after the file names, JSON for machines.
	out = runCmd("diff", before, lost, "--format", "json")
	if out.code != exitDiffChanged {
		t.Fatalf("json: exit %d: %s", out.code, out.stderr)
	}
	var d struct {
		Changed      bool `json:"changed"`
		Destinations []struct {
			Status  string `json:"status"`
			Removed []struct {
				Hops []string `json:"hops"`
			} `json:"removed"`
		} `json:"destinations"`
	}
	if err := json.Unmarshal([]byte(out.stdout), &d); err != nil {
		t.Fatalf("%v: %s", err, out.stdout)
	}
	if !d.Changed || len(d.Destinations) != 1 || d.Destinations[0].Status != "changed" ||
		len(d.Destinations[0].Removed) != 1 || strings.Join(d.Destinations[0].Removed[0].Hops, " ") != p[3] {
		t.Errorf("json: %+v", d)
	}

	// --ignore-hop forgives a noisy hop.
	noisy := writeResult(t, "noisy.jsonl", traceOf("10.99.0.1", p[0], p[1], p[2], "10.0.0.1 10.1.4.2 10.2.4.9 10.99.0.1"))
	if out := runCmd("diff", "--ignore-hop", "10.2.4.0/24", before, noisy); out.code != exitDiffSame {
		t.Errorf("--ignore-hop: exit %d\n%s%s", out.code, out.stdout, out.stderr)
	}
	out = runCmd("diff", before, noisy, "--ignore-hop", "10.2.3.0/24")
	if out.code != exitDiffChanged || !strings.Contains(out.stdout, "      TTL 3: 10.2.4.2 -> 10.2.4.9\n") {
		t.Errorf("changed hop: exit %d\n%s%s", out.code, out.stdout, out.stderr)
	}

	// A golden text file (lab.sh describe) against a result, both ways.
	golden := writeFile(t, "diamond4.txt", "# lab.sh describe diamond4\n"+strings.Join(p, "\n")+"\n")
	if out := runCmd("diff", golden, reshuffled); out.code != exitDiffSame {
		t.Errorf("golden: exit %d\n%s%s", out.code, out.stdout, out.stderr)
	}
	out = runCmd("diff", lost, golden)
	if out.code != exitDiffChanged || !strings.Contains(out.stdout, "  + added path: "+p[3]+"\n") {
		t.Errorf("golden after: exit %d\n%s%s", out.code, out.stdout, out.stderr)
	}
}

// TestDiffStdin runs the binary to read one side from standard input.
func TestDiffStdin(t *testing.T) {
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	before := writeResult(t, "before.jsonl", traceOf("10.99.0.1", diamondPaths...))
	var after bytes.Buffer
	if err := analysis.WriteJSON(&after, traceOf("10.99.0.1", diamondPaths[:3]...), analysis.Options{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "diff", before, "-", "-f", "json")
	cmd.Stdin = &after
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitDiffChanged {
		t.Fatalf("exit %v, stderr %s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), `"after":"-"`) || !strings.Contains(stdout.String(), `"removed":[{"hops":["10.0.0.1","10.1.4.2","10.2.4.2","10.99.0.1"]`) {
		t.Errorf("stdout %s", stdout.String())
	}
}

func TestDiffErrors(t *testing.T) {
	good := writeResult(t, "good.jsonl", traceOf("10.99.0.1", diamondPaths...))
	two := writeResult(t, "two.jsonl", traceOf("10.99.0.1", diamondPaths...), traceOf("10.99.0.2", "10.0.0.1 10.99.0.2"))
	text := writeFile(t, "paths.txt", diamondPaths[0]+"\n")
	bad := writeFile(t, "bad.jsonl", "{\"destination\":\"10.99.0.1\"}\nnot json\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"diff"}, "want two files, got 0"},
		{[]string{"diff", good}, "want two files, got 1"},
		{[]string{"diff", good, good, good}, "want two files, got 3"},
		{[]string{"diff", good, "/no/such/file"}, "/no/such/file"},
		{[]string{"diff", good, bad}, "bad.jsonl: analysis: line 2"},
		{[]string{"diff", good, good, "--format", "xml"}, `--format "xml"`},
		{[]string{"diff", "--ignore-hop", "r1", good, good}, `--ignore-hop "r1"`},
		{[]string{"diff", "--no-such-flag", good, good}, "no-such-flag"},
		{[]string{"diff", "-", "-"}, "only one of the two files can be standard input"},
		{[]string{"diff", text, two}, "paths.txt lists paths without a \"destination ADDR\" line, and " + two + " names 2 destinations"},
	} {
		out := runCmd(tc.args...)
		if out.code != exitDiffError {
			t.Errorf("%q: exit %d, want %d", tc.args, out.code, exitDiffError)
		}
		lines := strings.Split(strings.TrimSpace(out.stderr), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "traceflow-fast: diff: ") || !strings.Contains(lines[0], tc.want) {
			t.Errorf("%q: stderr %q, want one line with %q", tc.args, out.stderr, tc.want)
		}
		if out.stdout != "" {
			t.Errorf("%q: stdout %q", tc.args, out.stdout)
		}
	}
}

func TestDiffHelp(t *testing.T) {
	out := runCmd("diff", "--help")
	if out.code != 0 {
		t.Fatalf("exit %d: %s", out.code, out.stderr)
	}
	for _, w := range []string{"BEFORE AFTER", "--format", "--ignore-hop", "Exit status: 0 nothing changed, 1 something changed, 2 error"} {
		if !strings.Contains(out.stdout, w) {
			t.Errorf("diff --help lacks %q:\n%s", w, out.stdout)
		}
	}
	out = runCmd("--help")
	for _, w := range []string{"diff", "--expect", "--asn-db", "--asn-db-format", "--ixp-db", "--rdns", "4 the paths found differ"} {
		if !strings.Contains(out.stdout, w) {
			t.Errorf("--help lacks %q", w)
		}
	}
}

func TestPermuteDiffArgs(t *testing.T) {
	app := newApp(nil, nil)
	for _, tc := range []struct{ in, want []string }{
		{[]string{"tf", "diff", "a", "b"}, []string{"tf", "diff", "--", "a", "b"}},
		{[]string{"tf", "diff", "a", "b", "--format", "json"}, []string{"tf", "diff", "--format", "json", "--", "a", "b"}},
		{[]string{"tf", "diff", "a", "--ignore-hop", "10.0.0.0/8", "-", "-f", "json"}, []string{"tf", "diff", "--ignore-hop", "10.0.0.0/8", "-f", "json", "--", "a", "-"}},
		{[]string{"tf", "diff", "--help"}, []string{"tf", "diff", "--help"}},
	} {
		if got := cliargs.Permute(app, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("Permute(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestExpectFlagErrors checks that a bad --expect fails before any probe.
func TestExpectFlagErrors(t *testing.T) {
	text := writeFile(t, "paths.txt", diamondPaths[0]+"\n")
	bad := writeFile(t, "bad.txt", "10.0.0.1 r1\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--expect", "/no/such/file", "x"}, "--expect open /no/such/file"},
		{[]string{"--expect", bad, "x"}, `hop 2 "r1"`},
		{[]string{"--expect", text, "x", "y"}, "needs exactly one destination, not 2"},
		{[]string{"--ignore-hop", "10.0.0.1", "x"}, "--ignore-hop needs --expect"},
		{[]string{"--expect", text, "--ignore-hop", "nope", "x"}, `--ignore-hop "nope"`},
	} {
		out := runCmd(tc.args...)
		if out.code != exitError {
			t.Errorf("%q: exit %d, want %d", tc.args, out.code, exitError)
		}
		lines := strings.Split(strings.TrimSpace(out.stderr), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("%q: stderr %q, want one line with %q", tc.args, out.stderr, tc.want)
		}
	}
}

// TestLabDiffExpect changes a route in the lab and checks that diff and
// --expect name the lost path.
func TestLabDiffExpect(t *testing.T) {
	l := lab.Up(t, "diamond4")
	script, err := lab.Script()
	if err != nil {
		t.Fatal(err)
	}
	describe, err := exec.Command("bash", script, "describe", "diamond4").Output()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	expect := filepath.Join(dir, "diamond4.txt")
	if err := os.WriteFile(expect, describe, 0o644); err != nil {
		t.Fatal(err)
	}
	lost := "10.0.0.1 10.1.4.2 10.2.4.2 10.99.0.1"
	traceTo := func(name string, extra ...string) (string, runOutput) {
		t.Helper()
		path := filepath.Join(dir, name)
		args := append([]string{"--paths", "32", "--format", "json", "--wait", waitAnswered, "--output", path, lab.Destination}, extra...)
		return path, traceIn(t, l, args...)
	}

	before, out := traceTo("before.jsonl", "--expect", expect)
	if out.code != exitOK {
		t.Fatalf("before the change, --expect: exit %d, stderr:\n%s", out.code, out.stderr)
	}
	again, out := traceTo("again.jsonl")
	if out.code != exitOK {
		t.Fatalf("exit %d: %s", out.code, out.stderr)
	}
	if out := runCmd("diff", before, again); out.code != exitDiffSame {
		t.Errorf("two traces before the change: exit %d\n%s%s", out.code, out.stdout, out.stderr)
	}

	// Withdraw r1's fourth ECMP next hop, a4 (10.1.4.2).
	if _, stderr, err := l.Run("r1", "ip", "route", "replace", lab.DestinationPrefix,
		"nexthop", "via", "10.1.1.2", "nexthop", "via", "10.1.2.2", "nexthop", "via", "10.1.3.2"); err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	after, out := traceTo("after.jsonl")
	if out.code != exitOK {
		t.Fatalf("after the change: exit %d: %s", out.code, out.stderr)
	}

	out = runCmd("diff", before, after)
	if out.code != exitDiffChanged {
		t.Fatalf("diff: exit %d\n%s%s", out.code, out.stdout, out.stderr)
	}
	if !strings.Contains(out.stdout, "10.99.0.1: changed: 4 before -> 3 after distinct paths (3 unchanged)\n") ||
		!strings.Contains(out.stdout, "  - removed path: "+lost+" (path ID") ||
		strings.Contains(out.stdout, "  + ") {
		t.Errorf("diff output:\n%s", out.stdout)
	}
	t.Logf("diff:\n%s", out.stdout)
	out = runCmd("diff", before, after, "--format", "json")
	if out.code != exitDiffChanged || !strings.Contains(out.stdout, `"removed":[{"hops":["10.0.0.1","10.1.4.2","10.2.4.2","10.99.0.1"]`) {
		t.Errorf("diff --format json: exit %d\n%s", out.code, out.stdout)
	}

	// --expect fails with an explanation, against the text and the golden
	// JSON file alike; the results are still written.
	for _, golden := range []string{expect, before} {
		path, out := traceTo("checked.jsonl", "--expect", golden)
		if out.code != exitMismatch {
			t.Fatalf("--expect %s after the change: exit %d, stderr:\n%s", golden, out.code, out.stderr)
		}
		var explanation []string
		for line := range strings.Lines(out.stderr) {
			if !strings.HasPrefix(line, "time=") { // the log lines
				explanation = append(explanation, line)
			}
		}
		got := strings.Join(explanation, "")
		want := "10.99.0.1: differs from the expected paths: 4 expected -> 3 traced distinct paths (3 as expected)\n" +
			"  - missing path: " + lost
		if !strings.HasPrefix(got, want) ||
			!strings.HasSuffix(got, "1 of 1 destinations differ from the expected paths\ntraceflow-fast: the paths found differ from the expected ones in "+golden+"\n") {
			t.Errorf("--expect %s: stderr\n%s\nwant it to start with\n%s", golden, got, want)
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
			t.Errorf("--expect mismatch: no results written: %v", err)
		}
	}
}
