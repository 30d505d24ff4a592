package monitor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/tracer"
)

// Types of events.
const (
	// Baseline gives the first paths known of a destination: at start
	// (unless the state file knew them) and when a reload adds it.
	Baseline = "baseline"
	// PathChange says the distinct paths changed, the destination
	// reached before and after (or neither).
	PathChange = "path_change"
	// Unreachable says the destination was reached and is not any more;
	// Reachable the converse. Their paths changed too.
	Unreachable = "unreachable"
	Reachable   = "reachable"
)

// EventTypes are the types of events, in the order of their metric series.
var EventTypes = []string{Baseline, PathChange, Unreachable, Reachable}

// An Event is what the monitor reports of a destination.
type Event struct {
	Type   string
	Time   time.Time // the end of the run that showed it
	Target tracer.Target
	// Reached says whether the destination was reached by the run.
	Reached bool
	// Paths are the distinct paths of a Baseline.
	Paths []analysis.DiffPath
	// Diff compares the paths known before with the new ones (the other
	// types), as traceflow-fast diff does.
	Diff *analysis.DestDiff
	// Runs is how many runs in a row showed the change (--confirm).
	Runs int
	// Err says why the destination could not be traced (no route, say).
	Err string
}

// timeFormat writes times in UTC to the millisecond.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// MarshalJSON writes the event as one JSON object: "type", "time",
// "destination" and "name", then for a baseline "reached" and "paths", for
// a change the fields of a destination of `traceflow-fast diff --format
// json` ("status", "reached_before", "reached_after", "paths_before",
// "paths_after", "removed", "added", "changed_paths"...) and "runs"; then
// "error" when the destination could not be traced.
func (e *Event) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"type":%q,"time":%q`, e.Type, e.Time.UTC().Format(timeFormat))
	if e.Diff != nil {
		dd, err := json.Marshal(e.Diff)
		if err != nil {
			return nil, err
		}
		// The diff's own object, from its "destination" on.
		b.WriteByte(',')
		b.Write(dd[1 : len(dd)-1])
		fmt.Fprintf(&b, `,"runs":%d`, e.Runs)
	} else {
		head, err := json.Marshal(struct {
			Destination string              `json:"destination"`
			Name        string              `json:"name"`
			Reached     bool                `json:"reached"`
			Paths       []analysis.DiffPath `json:"paths"`
		}{e.Target.Addr.String(), targetName(e.Target), e.Reached, nonNilPaths(e.Paths)})
		if err != nil {
			return nil, err
		}
		b.WriteByte(',')
		b.Write(head[1 : len(head)-1])
	}
	if e.Err != "" {
		msg, _ := json.Marshal(e.Err)
		b.WriteString(`,"error":`)
		b.Write(msg)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func nonNilPaths(ps []analysis.DiffPath) []analysis.DiffPath {
	if ps == nil {
		return []analysis.DiffPath{}
	}
	return ps
}

// WriteText writes the event for people: a line with the time, the type
// and the destination, then the paths of a baseline or the changes as
// `traceflow-fast diff` writes them.
func (e *Event) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s ", e.Time.UTC().Format(timeFormat), e.Type)
	if e.Diff != nil {
		if err := analysis.WriteDestDiff(&b, e.Diff, analysis.DiffStyle{}); err != nil {
			return err
		}
		if e.Runs > 1 {
			fmt.Fprintf(&b, "  seen in %d runs in a row\n", e.Runs)
		}
	} else {
		label := e.Target.Addr.String()
		if n := targetName(e.Target); n != label {
			label = n + " (" + label + ")"
		}
		reached := "not reached"
		if e.Reached {
			reached = "reached"
		}
		fmt.Fprintf(&b, "%s: %d distinct %s, %s\n", label, len(e.Paths), plural(len(e.Paths), "path", "paths"), reached)
		for _, p := range e.Paths {
			fmt.Fprintf(&b, "  %s%s\n", analysis.FormatHops(p.Hops), idsText(p.PathIDs))
		}
	}
	if e.Err != "" {
		fmt.Fprintf(&b, "  error: %s\n", e.Err)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func idsText(ids []int) string {
	if len(ids) == 0 {
		return ""
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(id)
	}
	return " (path " + plural(len(ids), "ID ", "IDs ") + strings.Join(s, ",") + ")"
}

// eventWriter writes events in one format, one at a time.
type eventWriter struct {
	mu   sync.Mutex
	w    io.Writer
	text bool
}

func (ew *eventWriter) write(e *Event) error {
	ew.mu.Lock()
	defer ew.mu.Unlock()
	if ew.text {
		return e.WriteText(ew.w)
	}
	b, err := e.MarshalJSON()
	if err != nil {
		return err
	}
	_, err = ew.w.Write(append(b, '\n'))
	return err
}
