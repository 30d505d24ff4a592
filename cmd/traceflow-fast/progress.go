package main

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// Progress display timing.
const (
	barDelay     = time.Second // a run shorter than this shows no bar
	barEvery     = 200 * time.Millisecond
	lineEvery    = 10 * time.Second // progress lines when stderr is not a terminal
	barCellWidth = 30
)

// startProgress shows the progress of the run on standard error until the
// returned function is called: a bar redrawn in place when standard error
// is a terminal, a line every 10 s when it is not. Nothing goes to standard
// output. --progress=false turns it off.
func startProgress(o *options, st *runStats, start time.Time) (stop func()) {
	if !o.progress {
		return func() {}
	}
	tty := isTerminal(o.stderr)
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
			line := progressLine(st, time.Since(start))
			if tty {
				fmt.Fprintf(o.stderr, "\r\x1b[K%s %s", bar(st), line)
				drawn = true
			} else {
				fmt.Fprintf(o.stderr, "progress: %s\n", line)
			}
			select {
			case <-done:
				if drawn {
					fmt.Fprint(o.stderr, "\r\x1b[K")
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
func progressLine(st *runStats, elapsed time.Duration) string {
	done := st.done.Load() + st.skipped.Load()
	sent := st.sent()
	s := fmt.Sprintf("%d/%d destinations, %d reached, %d probes (%.0f/s), %d replies",
		done, st.total, st.reached.Load(), sent, float64(sent)/max(elapsed.Seconds(), 1e-3), st.replies.Load())
	if done > 0 && uint64(done) < st.total {
		left := time.Duration(float64(elapsed) * float64(st.total-uint64(done)) / float64(done))
		s += fmt.Sprintf(", ETA %s", left.Round(time.Second))
	}
	return s
}

func bar(st *runStats) string {
	frac := 0.0
	if st.total > 0 {
		frac = float64(st.done.Load()+st.skipped.Load()) / float64(st.total)
	}
	n := min(int(frac*barCellWidth), barCellWidth)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", barCellWidth-n) + "]"
}
