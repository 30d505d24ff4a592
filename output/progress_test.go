package output

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/tracer"
)

func TestProgressLine(t *testing.T) {
	st := &tracer.Stats{Total: 100, Sent: 5000, Done: 20, Reached: 19, Replies: 4900}
	got := progressLine(st, 2*time.Second)
	want := "20/100 destinations, 19 reached, 5000 probes (2500/s), 4900 replies, ETA 8s"
	if got != want {
		t.Errorf("progressLine = %q, want %q", got, want)
	}
	if b := bar(st); b != "[######........................]" {
		t.Errorf("bar = %q", b)
	}
	if isTerminal(&bytes.Buffer{}) || isTerminal(os.NewFile(^uintptr(0), "none")) {
		t.Error("a buffer or a bad file is not a terminal")
	}
}

func TestProgressLineOfAStream(t *testing.T) {
	st := &tracer.Stats{Total: -1, Sent: 50, Done: 2, Reached: 1, Replies: 40}
	got := progressLine(st, time.Second)
	if want := "2/? destinations, 1 reached, 50 probes (50/s), 40 replies"; got != want {
		t.Errorf("progressLine = %q, want %q", got, want)
	}
	if b := bar(st); b != "[..............................]" {
		t.Errorf("bar = %q", b)
	}
}
