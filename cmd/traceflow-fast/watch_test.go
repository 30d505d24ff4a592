package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// hung is how long a test waits for what takes a second or two before it
// fails as hung: only a test that would never finish reaches it, on a
// machine however loaded.
const hung = 60 * time.Second

// waitAnswered is the --wait of the lab traces in which every probe is
// answered: such a run ends with its last answer, so a generous --wait
// costs nothing, and a reply that a loaded machine delays is not taken for
// a silent hop (or a late reply).
const waitAnswered = "5"

// lineLog is an io.Writer for a command's output that keeps it all and lets
// a test wait for the lines it needs while the command runs.
type lineLog struct {
	mu      sync.Mutex
	all     bytes.Buffer
	partial []byte
	lines   []string
	more    chan struct{} // signalled after every write
}

func newLineLog() *lineLog { return &lineLog{more: make(chan struct{}, 1)} }

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.all.Write(p)
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	l.mu.Unlock()
	select {
	case l.more <- struct{}{}:
	default:
	}
	return len(p), nil
}

// String returns everything written so far.
func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

// linesFrom returns the whole lines from the i-th on.
func (l *lineLog) linesFrom(i int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines[i:]
}

// watched is a command started with its standard output and error in
// lineLogs.
type watched struct {
	cmd            *exec.Cmd
	stdout, stderr *lineLog
	exited         chan struct{} // closed when the command has exited
	err            error         // cmd.Wait's, once exited is closed
}

// startWatched starts cmd (which should have a context that kills it
// after hung at the most) with its output in lineLogs.
func startWatched(t *testing.T, cmd *exec.Cmd) *watched {
	t.Helper()
	w := &watched{cmd: cmd, stdout: newLineLog(), stderr: newLineLog(), exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = w.stdout, w.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		w.err = cmd.Wait()
		close(w.exited)
	}()
	return w
}

// await waits until n lines of out satisfy match: it fails the test if the
// command exits first, or as hung after the limit hung.
func (w *watched) await(t *testing.T, out *lineLog, n int, what string, match func(line string) bool) {
	t.Helper()
	timer := time.NewTimer(hung)
	defer timer.Stop()
	seen, next := 0, 0
	for exited := false; ; {
		lines := out.linesFrom(next)
		next += len(lines)
		for _, line := range lines {
			if match(line) {
				seen++
			}
		}
		switch {
		case seen >= n:
			return
		case exited:
			t.Fatalf("the command exited (%v) after %d of %d %s\nstderr:\n%s", w.err, seen, n, what, w.stderr.String())
		}
		select {
		case <-out.more:
		case <-w.exited:
			exited = true // read what it wrote last, then give up
		case <-timer.C:
			t.Fatalf("hung: %d of %d %s after %v\nstderr:\n%s", seen, n, what, hung, w.stderr.String())
		}
	}
}

// wait waits for the command to exit and returns cmd.Wait's error; it
// fails the test as hung after the limit hung.
func (w *watched) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-w.exited:
		return w.err
	case <-time.After(hung):
		t.Fatalf("hung: still running after %v\nstderr:\n%s", hung, w.stderr.String())
		return nil
	}
}

// isComplete says whether a --format json line is a finished destination's
// result (not a partial one).
func isComplete(line string) bool {
	var r struct {
		Destination string `json:"destination"`
		Partial     bool   `json:"partial"`
	}
	return json.Unmarshal([]byte(line), &r) == nil && r.Destination != "" && !r.Partial
}

// rttBound is the longest RTT, in ms, that a run can report: its duration
// (from the done line on stderr), plus the part of a clock unit that the
// send clock in the probes truncates. No reply comes back later than the
// run lasts, however slow the machine; an RTT decoded from a wrong send
// clock, which wraps every probe.ClockWrap (6.5 s), mostly would.
func rttBound(t *testing.T, stderr string) float64 {
	t.Helper()
	d, err := time.ParseDuration(doneLog(t, stderr)["duration"])
	if err != nil {
		t.Fatalf("done line duration: %v", err)
	}
	// The duration is rounded to the microsecond.
	return float64(d+probe.ClockUnit+time.Microsecond) / float64(time.Millisecond)
}
