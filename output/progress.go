package output

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/traceflow-fast/traceflow-fast/tracer"
)

// Progress display timing.
const (
	barDelay     = time.Second // a run shorter than this shows no bar
	barEvery     = 200 * time.Millisecond
	lineEvery    = 10 * time.Second // progress lines when stderr is not a terminal
	barCellWidth = 30
)

// Progress shows the progress of a run on w (standard error) until the
// returned function is called: a bar redrawn in place when w is a
// terminal, a line every 10 s when it is not. stats gives the run's
// counters.
func Progress(w io.Writer, stats func() tracer.Stats) (stop func()) {
	tty := isTerminal(w)
	every, delay := lineEvery, lineEvery
	if tty {
		every, delay = barEvery, barDelay
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-done:
			return
		case <-time.After(delay):
		}
		t := time.NewTicker(every)
		defer t.Stop()
		drawn := false
		for {
			st := stats()
			line := progressLine(&st, time.Since(st.Start))
			if tty {
				fmt.Fprintf(w, "\r\x1b[K%s %s", bar(&st), line)
				drawn = true
			} else {
				fmt.Fprintf(w, "progress: %s\n", line)
			}
			select {
			case <-done:
				if drawn {
					fmt.Fprint(w, "\r\x1b[K")
				}
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// progressLine says how far the run is: destinations done of all, probes
// per second, replies, and the time left at the pace so far.
func progressLine(st *tracer.Stats, elapsed time.Duration) string {
	done := st.Done + st.Skipped
	total := "?"
	if st.Total >= 0 {
		total = strconv.FormatInt(st.Total, 10)
	}
	s := fmt.Sprintf("%d/%s destinations, %d reached, %d probes (%.0f/s), %d replies",
		done, total, st.Reached, st.Sent, float64(st.Sent)/max(elapsed.Seconds(), 1e-3), st.Replies)
	if done > 0 && done < st.Total {
		left := time.Duration(float64(elapsed) * float64(st.Total-done) / float64(done))
		s += fmt.Sprintf(", ETA %s", left.Round(time.Second))
	}
	return s
}

func bar(st *tracer.Stats) string {
	frac := 0.0
	if st.Total > 0 {
		frac = float64(st.Done+st.Skipped) / float64(st.Total)
	}
	n := min(int(frac*barCellWidth), barCellWidth)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", barCellWidth-n) + "]"
}
