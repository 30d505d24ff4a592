package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/internal/lab"
	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
)

// --tui is refused, in one line naming why, where it cannot be shown:
// without a terminal (as under go test) and for bulk scans.
func TestTUIRefused(t *testing.T) {
	list := filepath.Join(t.TempDir(), "targets.txt")
	if err := os.WriteFile(list, []byte("10.99.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tui", "10.99.0.1"}, "--tui: standard input is not a terminal"},
		{[]string{"--tui", "-f", list}, "--tui: bulk scans (--file) are not shown live"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"traceflow-fast"}, tc.args...), &stdout, &stderr)
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if code != exitError || len(lines) != 1 || !strings.Contains(lines[0], tc.want) || stdout.Len() != 0 {
			t.Errorf("%q: exit %d, stderr %q, stdout %q: want exit 1 and one line with %q", tc.args, code, stderr.String(), stdout.String(), tc.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"traceflow-fast", "monitor", "--tui", "10.99.0.1"}, &stdout, &stderr); code != exitError || !strings.Contains(stderr.String(), "tui") {
		t.Errorf("monitor --tui: exit %d, %q: want it refused as an unknown flag", code, stderr.String())
	}
}

// tmux drives a terminal of its own (a server on a socket of the test's)
// in which the command runs.
type tmux struct {
	t    *testing.T
	bin  string
	sock string
}

func (m *tmux) run(args ...string) string {
	m.t.Helper()
	out, err := exec.Command(m.bin, append([]string{"-S", m.sock}, args...)...).CombinedOutput()
	if err != nil {
		m.t.Fatalf("tmux %v: %v: %s", args, err, out)
	}
	return string(out)
}

// waitFor captures the pane until ok accepts it, for up to 30 s.
func (m *tmux) waitFor(what string, ok func(screen string) bool) string {
	m.t.Helper()
	var screen string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if screen = m.run("capture-pane", "-p", "-t", "tfx"); ok(screen) {
			return screen
		}
	}
	m.t.Fatalf("waited 30 s for %s; the screen:\n%s", what, screen)
	return ""
}

// screenPaths reads the paths off the view: the addresses of each row's
// first line, without the marks.
func screenPaths(screen string) []string {
	var out []string
	for _, line := range strings.Split(screen, "\n") {
		if !strings.HasPrefix(line, "path ") || len(line) < 8 {
			continue
		}
		var hops []string
		for _, f := range strings.Fields(line[8:]) {
			hops = append(hops, strings.Trim(f, "<>"))
		}
		out = append(out, strings.Join(hops, " "))
	}
	slices.Sort(out)
	return out
}

// The live view in a real terminal (tmux) over the diamond lab: it shows
// the four branches with their addresses, redraws for a new size, and q
// leaves it, with the terminal back as it was (the alternate screen left,
// the cursor shown) and the results written to -o.
func TestLabTUI(t *testing.T) {
	lab.RequireRoot(t)
	m := &tmux{t: t, bin: testenv.RequireTool(t, "tmux", "tmux"), sock: filepath.Join(t.TempDir(), "tmux")}
	l := lab.Up(t, "diamond4")
	bin, err := binary()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	dir := t.TempDir()
	out, status := filepath.Join(dir, "out.json"), filepath.Join(dir, "status")
	cmd := strings.Join([]string{"ip", "netns", "exec", l.NS("prober"), bin, "--tui", "--paths", "16", "-F", "json", "-o", out, lab.Destination}, " ")
	m.run("new-session", "-d", "-s", "tfx", "-x", "100", "-y", "30", "sh", "-c", cmd+"; echo $? >"+status+"; sleep 600")
	t.Cleanup(func() { exec.Command(m.bin, "-S", m.sock, "kill-server").Run() })

	screen := m.waitFor("the run to finish", func(s string) bool { return strings.Contains(s, "[done: q quits]") })
	if got, want := screenPaths(screen), expectedSet(l); !slices.Equal(got, want) {
		t.Errorf("the view shows the paths\n  %s\nwant the lab's\n  %s\nscreen:\n%s", strings.Join(got, "\n  "), strings.Join(want, "\n  "), screen)
	}
	if !strings.Contains(screen, "4 distinct paths among 16 path IDs") || !strings.Contains(screen, "TTLs 1-4/4") {
		t.Errorf("counts or TTLs missing from the screen:\n%s", screen)
	}
	// 60 columns hold 2 TTLs: the view redraws for the new size.
	m.run("resize-window", "-t", "tfx", "-x", "60", "-y", "20")
	m.waitFor("the redraw at 60x20", func(s string) bool { return strings.Contains(s, "TTLs 1-2/4") })
	if on := strings.TrimSpace(m.run("display-message", "-p", "-t", "tfx", "#{alternate_on}")); on != "1" {
		t.Errorf("the view is not on the alternate screen (alternate_on %s)", on)
	}

	m.run("send-keys", "-t", "tfx", "q")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if b, err := os.ReadFile(status); err == nil && len(b) > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, err := os.ReadFile(status)
	if code, _ := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || code != exitOK {
		t.Fatalf("after q: exit status %q (%v), want 0", b, err)
	}
	after := m.run("display-message", "-p", "-t", "tfx", "#{alternate_on} #{cursor_flag}")
	if strings.TrimSpace(after) != "0 1" {
		t.Errorf("terminal after q: alternate screen, cursor shown = %q, want 0 1", after)
	}
	if final := m.run("capture-pane", "-p", "-t", "tfx"); !strings.Contains(final, "msg=tracing") || strings.Contains(final, "TTL  ") {
		t.Errorf("after q, the terminal shows the logs held back, not the view:\n%s", final)
	}
	res, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	rs := parseResults(t, string(res))
	if len(rs) != 1 || !slices.Equal(pathSet(rs[0]), expectedSet(l)) {
		t.Errorf("-o holds %d results, paths %v; want the lab's %v", len(rs), pathSet(rs[0]), expectedSet(l))
	}
}
