package tui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/output"
	"github.com/traceflow-fast/traceflow-fast/tracer"
)

// Session is the live view around one run of the engine: it takes the
// terminal when the run starts and gives it back, as it was, when the user
// quits or a signal stops the program. A nil *Session is no view: its
// methods then run without one.
type Session struct {
	state  *State
	in     *os.File // keys
	out    *os.File // the screen
	stdout *held    // the results written to standard output
	stderr *held    // the logs
	cancel context.CancelFunc
	frame  time.Duration // between redraws
}

// ErrNotTerminal is the error of Open when standard input, output or
// error is not a terminal.
var ErrNotTerminal = errors.New("not a terminal")

// Open prepares the view of a run (--tui) when on is set, and returns nil
// otherwise. It checks that the view can be shown: standard input, output
// and error (out.Stdout, out.Stderr) are a terminal, and the run is not a
// bulk scan, which it does not show. It then sets cfg.Observer to the
// view's state, and replaces out.Stdout and out.Stderr with writers that
// hold back what is written to them (results without --output, and logs)
// while the view is up.
func Open(on bool, cfg *tracer.Config, out *output.Options, bulk bool) (*Session, error) {
	if !on {
		return nil, nil
	}
	if bulk {
		return nil, errors.New("--tui: bulk scans (--file) are not shown live; give the destinations on the command line, or leave out --tui")
	}
	for _, f := range []struct {
		name string
		w    any
	}{{"input", os.Stdin}, {"output", out.Stdout}, {"error", out.Stderr}} {
		if file, ok := f.w.(*os.File); !ok || !term.IsTerminal(int(file.Fd())) {
			return nil, fmt.Errorf("--tui: standard %s is %w (the live view needs one; leave out --tui to write the results as text)", f.name, ErrNotTerminal)
		}
	}
	s := &Session{state: NewState(), in: os.Stdin, out: out.Stdout.(*os.File), frame: 100 * time.Millisecond}
	s.stdout, s.stderr = newHeld(out.Stdout), newHeld(out.Stderr)
	out.Stdout, out.Stderr = s.stdout, s.stderr
	cfg.Observer = s.state
	return s, nil
}

// Context returns a context of parent that the view cancels when the user
// quits before the run is over (nil Session: parent itself).
func (s *Session) Context(parent context.Context) context.Context {
	if s == nil {
		return parent
	}
	ctx, cancel := context.WithCancel(parent)
	s.cancel = cancel
	return ctx
}

// RunFunc is how a Session runs the engine: tracer.(*Tracer).Run.
type RunFunc func(ctx context.Context, sink tracer.Sink) (tracer.Summary, error)

// Run shows the view while run runs with sink, and after it, until the
// user quits (q) or ctx is done; then it restores the terminal and writes
// what was held back. The user's quitting before the end cancels the
// context of Context, so the run stops as if interrupted. A nil Session
// only calls run.
func (s *Session) Run(ctx context.Context, run RunFunc, sink tracer.Sink) (tracer.Summary, error) {
	if s == nil {
		return run(ctx, sink)
	}
	if s.cancel == nil {
		ctx = s.Context(ctx)
	}
	defer s.cancel()
	s.stdout.hold()
	s.stderr.hold()
	scr, err := enter(s.in, s.out)
	if err != nil {
		s.release()
		return tracer.Summary{}, fmt.Errorf("--tui: %w", err)
	}
	// Should run panic, the terminal is given back all the same.
	var once sync.Once
	restore := func() { once.Do(scr.restore) }
	defer restore()
	ended := make(chan string, 1)
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		s.loop(ctx, scr, ended)
	}()
	sum, runErr := run(ctx, tracer.SinkFunc(func(t *analysis.Trace) error {
		err := sink.Result(t)
		s.state.Result(t)
		return err
	}))
	ended <- endStatus(ctx, runErr)
	<-closed
	restore()
	if err := s.release(); err != nil && runErr == nil {
		runErr = err
	}
	return sum, runErr
}

func (s *Session) release() error {
	return errors.Join(s.stdout.release(), s.stderr.release())
}

// endStatus is the title's state once the run is over.
func endStatus(ctx context.Context, err error) string {
	switch {
	case err == nil:
		return "done: q quits"
	case ctx.Err() != nil:
		return "interrupted"
	}
	return "stopped: " + err.Error()
}

// loop draws and reads keys until the user quits or ctx is done; ended
// says the run is over, and how.
func (s *Session) loop(ctx context.Context, scr *screen, ended <-chan string) {
	keys := make(chan []byte, 16)
	go readKeys(s.in, keys)
	tick := time.NewTicker(s.frame)
	defer tick.Stop()
	var v View
	snap := s.state.Snapshot(0)
	seen, dirty, over := uint64(0), false, false
	scr.draw(Render(snap, v, scr.w, scr.h))
	for {
		select {
		case <-ctx.Done():
			return
		case status := <-ended:
			v.Status, over, dirty = status, true, true
			if !v.Paused {
				snap = s.state.Snapshot(v.Dest)
			}
		case b, ok := <-keys:
			if !ok {
				keys = nil // no more input: quit with a signal
				continue
			}
			for _, k := range ParseKeys(b) {
				if v.Handle(k, snap, scr.w, scr.h) {
					if !over {
						s.cancel() // the run stops, its results partial
					}
					return
				}
			}
			dirty = true
		case <-tick.C:
			if scr.resized() {
				dirty = true
			}
			log := strings.TrimSpace(trimTime(s.stderr.lastLine()))
			if ver := s.state.Version(); !v.Paused && (ver != seen || snap.Index != v.Dest) {
				seen, snap, dirty = ver, s.state.Snapshot(v.Dest), true
			}
			if log != v.Log {
				v.Log, dirty = log, true
			}
			// Drawn on the ticks only: keys held down or a flood of
			// answers redraw no more than once a frame.
			if dirty {
				scr.draw(Render(snap, v, scr.w, scr.h))
				dirty = false
			}
		}
	}
}

// trimTime drops the time= field a text log line starts with.
func trimTime(line string) string {
	if strings.HasPrefix(line, "time=") {
		if _, rest, ok := strings.Cut(line, " "); ok {
			return rest
		}
	}
	return line
}

func readKeys(in io.Reader, keys chan<- []byte) {
	defer close(keys)
	for {
		b := make([]byte, 64)
		n, err := in.Read(b)
		if n > 0 {
			keys <- b[:n]
		}
		if err != nil {
			return
		}
	}
}

// screen is the terminal while the view holds it.
type screen struct {
	in, out *os.File
	old     *term.State
	w, h    int
	buf     bytes.Buffer
}

// enter puts the terminal in raw mode and switches to the alternate
// screen, without the cursor.
func enter(in, out *os.File) (*screen, error) {
	s := &screen{in: in, out: out}
	old, err := term.MakeRaw(int(in.Fd()))
	if err != nil {
		return nil, err
	}
	s.old = old
	if s.w, s.h, err = term.GetSize(int(out.Fd())); err != nil {
		term.Restore(int(in.Fd()), old)
		return nil, err
	}
	out.WriteString("\x1b[?1049h\x1b[?25l\x1b[2J")
	return s, nil
}

// resized reads the size of the terminal again, and says if it changed.
func (s *screen) resized() bool {
	w, h, err := term.GetSize(int(s.out.Fd()))
	if err != nil || w == s.w && h == s.h {
		return false
	}
	s.w, s.h = w, h
	s.out.WriteString("\x1b[2J")
	return true
}

// draw writes lines over the screen, in one write.
func (s *screen) draw(lines []string) {
	s.buf.Reset()
	s.buf.WriteString("\x1b[H")
	for i, l := range lines {
		s.buf.WriteString(l)
		s.buf.WriteString("\x1b[K")
		if i < len(lines)-1 {
			s.buf.WriteString("\r\n")
		}
	}
	s.out.Write(s.buf.Bytes())
}

// restore gives the terminal back as it was.
func (s *screen) restore() {
	s.out.WriteString("\x1b[?25h\x1b[?1049l")
	term.Restore(int(s.in.Fd()), s.old)
}
