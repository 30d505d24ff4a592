package tui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// pty is a pseudo-terminal: the view runs on its terminal side, the test
// reads what it draws and types on the other.
type pty struct {
	master, term *os.File
	mu           sync.Mutex
	out          bytes.Buffer
}

func openPTY(t *testing.T, cols, rows uint16) *pty {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tt, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(int(tt.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		t.Fatal(err)
	}
	p := &pty{master: m, term: tt}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := m.Read(b)
			p.mu.Lock()
			p.out.Write(b[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { tt.Close(); m.Close() })
	return p
}

func (p *pty) drawn() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitFor waits up to 30 s for the view to have drawn s.
func (p *pty) waitFor(t *testing.T, s string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if strings.Contains(p.drawn(), s) {
			return
		}
	}
	t.Fatalf("the view never drew %q; it drew %q", s, p.drawn())
}

func testSession(p *pty, stdout, stderr *bytes.Buffer) *Session {
	return &Session{state: NewState(), in: p.term, out: p.term, frame: time.Millisecond,
		stdout: newHeld(stdout), stderr: newHeld(stderr)}
}

// A whole run of the engine under the view, in a terminal: the view draws
// the run's paths and the log line, holds back what is written to
// standard output and error, stays after the run until q, then gives the
// terminal back in the mode it found it in and writes what it held.
func TestSessionRunsInATerminal(t *testing.T) {
	p := openPTY(t, 80, 24)
	before, err := unix.IoctlGetTermios(int(p.term.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	s := testSession(p, &stdout, &stderr)
	n, err := tracertest.NewNetwork(tracertest.Diamond(4), &tracertest.Options{Seed: 1, Filter: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := tracer.Config{Paths: 16, Network: n, Clock: n.Clock(), Observer: s.state}
	var results []*analysis.Trace
	run := func(ctx context.Context, sink tracer.Sink) (tracer.Summary, error) {
		fmt.Fprintln(s.stderr, "level=INFO msg=tracing")
		return tracer.Trace(ctx, cfg, tracer.Addrs(tracertest.DstAddr), sink)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Run(context.Background(), run, tracer.SinkFunc(func(tr *analysis.Trace) error {
			results = append(results, tr)
			fmt.Fprintln(s.stdout, tr.Summary())
			return nil
		}))
		done <- err
	}()
	p.waitFor(t, "[done: q quits]")
	p.waitFor(t, "level=INFO msg=tracing")
	if stdout.Len() != 0 || stderr.Len() != 0 {
		t.Errorf("written while the view is up: %q, %q", stdout.String(), stderr.String())
	}
	p.master.Write([]byte("?"))
	p.waitFor(t, "any key returns")
	p.master.Write([]byte("xq"))
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	after, err := unix.IoctlGetTermios(int(p.term.Fd()), unix.TCGETS)
	if err != nil || *after != *before {
		t.Errorf("terminal mode after the view %+v (%v), want it as before, %+v", after, err, before)
	}
	p.waitFor(t, "\x1b[?25h\x1b[?1049l")
	if d := p.drawn(); !strings.Contains(d, "10.0.0.1<") || !strings.HasSuffix(d, "\x1b[?25h\x1b[?1049l") {
		t.Errorf("drawn: %q: want the paths, and the alternate screen left at the end", d)
	}
	if len(results) != 1 || stdout.String() != results[0].Summary()+"\n" || stderr.String() != "level=INFO msg=tracing\n" {
		t.Errorf("%d results; after the view, stdout %q, stderr %q", len(results), stdout.String(), stderr.String())
	}
}

// q while the run goes cancels the run's context: the run stops, as on a
// signal.
func TestSessionQuitStopsTheRun(t *testing.T) {
	p := openPTY(t, 80, 24)
	var stdout, stderr bytes.Buffer
	s := testSession(p, &stdout, &stderr)
	ctx := s.Context(context.Background())
	run := func(ctx context.Context, sink tracer.Sink) (tracer.Summary, error) {
		<-ctx.Done()
		return tracer.Summary{}, ctx.Err()
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Run(ctx, run, tracer.SinkFunc(func(*analysis.Trace) error { return nil }))
		done <- err
	}()
	p.waitFor(t, "[running]")
	p.master.Write([]byte("q"))
	if err := <-done; !errors.Is(err, context.Canceled) || ctx.Err() == nil {
		t.Errorf("Run after q: %v, context %v: want the run cancelled", err, ctx.Err())
	}
}

// A run that panics still leaves the terminal as it found it.
func TestSessionRestoresOnPanic(t *testing.T) {
	p := openPTY(t, 80, 24)
	before, err := unix.IoctlGetTermios(int(p.term.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	s := testSession(p, &stdout, &stderr)
	recovered := make(chan any, 1)
	raw := make(chan bool, 1)
	go func() {
		defer func() { recovered <- recover() }()
		s.Run(context.Background(), func(context.Context, tracer.Sink) (tracer.Summary, error) {
			during, err := unix.IoctlGetTermios(int(p.term.Fd()), unix.TCGETS)
			raw <- err == nil && *during != *before
			panic("boom")
		}, nil)
	}()
	if r := <-recovered; r != "boom" || !<-raw {
		t.Fatalf("recovered %v, want the run's panic, raised in raw mode", r)
	}
	after, err := unix.IoctlGetTermios(int(p.term.Fd()), unix.TCGETS)
	if err != nil || *after != *before {
		t.Errorf("terminal mode after the panic %+v (%v), want it as before, %+v", after, err, before)
	}
	p.waitFor(t, "\x1b[?25h\x1b[?1049l")
}
