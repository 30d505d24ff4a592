package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
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
	// The monitor's target files are no bulk scan: only the terminal is
	// missing.
	var stdout, stderr bytes.Buffer
	code := run([]string{"traceflow-fast", "monitor", "--tui", "-f", list}, &stdout, &stderr)
	if lines := strings.Split(strings.TrimSpace(stderr.String()), "\n"); code != exitError || len(lines) != 1 || !strings.Contains(lines[0], "--tui: standard input is not a terminal") {
		t.Errorf("monitor --tui: exit %d, %q: want it refused for want of a terminal, in one line", code, stderr.String())
	}
}

// tmux drives a terminal of its own (a server on a socket of the test's)
// in which the command runs, in a session of the test's name.
type tmux struct {
	t      *testing.T
	bin    string
	sock   string
	status string // where the shell writes the command's exit status
	log    string // a log line the command writes, held back while the view is up
}

// startTUI runs the command with --tui and args in a new tmux terminal of
// 100x30, in the lab's prober namespace; args "monitor", ... run the
// monitor with --tui.
func startTUI(t *testing.T, l *lab.Lab, args ...string) *tmux {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	dir := t.TempDir()
	m := &tmux{t: t, bin: testenv.RequireTool(t, "tmux", "tmux"), sock: filepath.Join(dir, "tmux"), status: filepath.Join(dir, "status"), log: "msg=tracing"}
	cmd := []string{"ip", "netns", "exec", l.NS("prober"), bin}
	if len(args) > 0 && args[0] == "monitor" {
		cmd, args, m.log = append(cmd, "monitor"), args[1:], "msg=monitoring"
	}
	cmd = append(append(cmd, "--tui"), args...)
	m.run("new-session", "-d", "-s", "tfx", "-x", "100", "-y", "30", "sh", "-c", strings.Join(cmd, " ")+"; echo $? >"+m.status+"; sleep 600")
	t.Cleanup(func() { exec.Command(m.bin, "-S", m.sock, "kill-server").Run() })
	return m
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

// exit waits for the command to exit, for up to 30 s, and returns its
// status; then it checks that the terminal is as it was before the view:
// off the alternate screen, the cursor shown, the logs held back on it.
func (m *tmux) exit() int {
	m.t.Helper()
	var b []byte
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && len(b) == 0; time.Sleep(50 * time.Millisecond) {
		b, _ = os.ReadFile(m.status)
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		m.t.Fatalf("the command did not exit within 30 s (status file %q)", b)
	}
	if after := m.run("display-message", "-p", "-t", "tfx", "#{alternate_on} #{cursor_flag}"); strings.TrimSpace(after) != "0 1" {
		m.t.Errorf("terminal after the view: alternate screen, cursor shown = %q, want 0 1", after)
	}
	if final := m.run("capture-pane", "-p", "-t", "tfx"); !strings.Contains(final, m.log) || strings.Contains(final, "TTL  ") {
		m.t.Errorf("after the view, the terminal shows the logs held back, not the view:\n%s", final)
	}
	return code
}

// pid returns the process ID of the command (ip netns exec execs it).
func (m *tmux) pid() int {
	m.t.Helper()
	sh := strings.TrimSpace(m.run("display-message", "-p", "-t", "tfx", "#{pane_pid}"))
	b, err := os.ReadFile("/proc/" + sh + "/task/" + sh + "/children")
	pid, perr := strconv.Atoi(strings.TrimSpace(strings.Fields(string(b) + " x")[0]))
	if err != nil || perr != nil {
		m.t.Fatalf("the command's process under the shell %s: %q, %v", sh, b, err)
	}
	return pid
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

// readResults reads the JSON results the command wrote to name.
func readResults(t *testing.T, name string) []result {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return parseResults(t, string(b))
}

// The live view in a real terminal (tmux) over the diamond lab: it shows
// the four branches with their addresses, redraws for a new size, and q
// leaves it, with the terminal back as it was and the results written to
// -o. Quitting a run in progress (q, or SIGTERM) stops it as interrupted,
// its partial results written, the terminal restored all the same.
func TestLabTUI(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.Up(t, "diamond4")
	t.Run("q when done", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out.json")
		m := startTUI(t, l, "--paths", "16", "-F", "json", "-o", out, lab.Destination)
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
		if code := m.exit(); code != exitOK {
			t.Errorf("after q: exit status %d, want 0", code)
		}
		if rs := readResults(t, out); len(rs) != 1 || !slices.Equal(pathSet(rs[0]), expectedSet(l)) {
			t.Errorf("-o holds %d results %v; want the lab's paths %v", len(rs), rs, expectedSet(l))
		}
	})
	// --rate 4 makes the 64 probes last 16 s: the view quits long before.
	for _, stop := range []string{"q", "SIGTERM"} {
		t.Run(stop+" while running", func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.json")
			m := startTUI(t, l, "--rate", "4", "--paths", "16", "-F", "json", "-o", out, lab.Destination)
			m.waitFor("a first hop", func(s string) bool { return strings.Contains(s, "[running]") && strings.Contains(s, "10.0.0.1") })
			if stop == "q" {
				m.run("send-keys", "-t", "tfx", "q")
			} else {
				p, err := os.FindProcess(m.pid())
				if err == nil {
					err = p.Signal(syscall.SIGTERM)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if code := m.exit(); code != exitInterrupted {
				t.Errorf("after %s: exit status %d, want %d (interrupted)", stop, code, exitInterrupted)
			}
			if rs := readResults(t, out); len(rs) != 1 || rs[0].ProbesSent == 0 || rs[0].ProbesSent >= 64 {
				t.Errorf("-o holds %d results (%v), want the one partial result", len(rs), rs)
			}
		})
	}
}

// monitor --tui in a real terminal (tmux) over the diamond lab: the rounds
// are counted, a branch withdrawn on r1 shows as a change with its time,
// the branch given back is the row marked changed, with the time of the
// change the event gives; q leaves the view, the monitor stopped (exit 0)
// and the terminal as it was.
func TestLabMonitorTUI(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.Up(t, "diamond4")
	events := filepath.Join(t.TempDir(), "events.json")
	m := startTUI(t, l, "monitor", "--paths", "16", "--interval", "1s", "-o", events, lab.Destination)
	screen := m.waitFor("the paths of a round", func(s string) bool { return strings.Contains(s, "4 distinct paths among 16 path IDs") })
	if got, want := screenPaths(screen), expectedSet(l); !slices.Equal(got, want) {
		t.Errorf("the view shows the paths\n  %s\nwant the lab's\n  %s\nscreen:\n%s", strings.Join(got, "\n  "), strings.Join(want, "\n  "), screen)
	}
	first := roundOf(t, screen)
	m.waitFor("a round more", func(s string) bool { return roundOf(t, s) > first })
	routeR1(t, l, "10.1.1.2", "10.1.2.2", "10.1.3.2")
	screen = m.waitFor("the branch withdrawn shown as changed", func(s string) bool { return strings.Contains(s, "CHANGED ") })
	lost := lastEvent(t, events)
	if lost.Type != "path_change" || !strings.Contains(screen, "CHANGED "+lost.Time.Local().Format("15:04:05")+" path change -1 (4->3 paths)") ||
		len(screenPaths(screen)) != 3 {
		t.Errorf("after the branch withdrawn (event %+v), the screen:\n%s", lost, screen)
	}
	routeR1(t, l, "10.1.1.2", "10.1.2.2", "10.1.3.2", "10.1.4.2")
	screen = m.waitFor("the branch given back marked", func(s string) bool { return strings.Contains(s, "+1 (3->4 paths)") })
	back := lastEvent(t, events)
	when := back.Time.Local().Format("15:04:05")
	lines := strings.Split(screen, "\n")
	i := slices.IndexFunc(lines, func(s string) bool { return strings.HasPrefix(s, "*path ") })
	if i < 0 || i+2 >= len(lines) || !strings.Contains(lines[i], " 10.1.4.2 ") || !strings.HasPrefix(lines[i+1], "changed") ||
		!strings.HasPrefix(lines[i+2], when) || !strings.Contains(lines[0], "CHANGED "+when) {
		t.Errorf("the branch given back is not the row marked changed at %s; the screen:\n%s", when, screen)
	}
	m.run("send-keys", "-t", "tfx", "q")
	if code := m.exit(); code != exitOK {
		t.Errorf("after q: exit status %d, want 0", code)
	}
}

// roundOf reads the round count off the monitor's view (-1: none yet).
func roundOf(t *testing.T, screen string) int {
	_, rest, ok := strings.Cut(screen, "]  round ")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(strings.Fields(rest)[0])
	if err != nil {
		t.Fatalf("round count in %q", rest)
	}
	return n
}

// lastEvent reads the last event the monitor appended to name.
func lastEvent(t *testing.T, name string) (e struct {
	Type string    `json:"type"`
	Time time.Time `json:"time"`
}) {
	t.Helper()
	b, err := os.ReadFile(name)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if err == nil {
		err = json.Unmarshal([]byte(lines[len(lines)-1]), &e)
	}
	if err != nil {
		t.Fatalf("events in %s: %v", name, err)
	}
	return e
}
