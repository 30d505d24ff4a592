package fleetcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/annotate"
	"github.com/traceflow-fast/traceflow-fast/fleet"
	"github.com/traceflow-fast/traceflow-fast/output"
	"github.com/traceflow-fast/traceflow-fast/targets"
)

// resultsOut writes the results of agents in a format: json (the records
// of the results stream, "agent" and "measurement" first) and dot (a
// digraph per agent) itself, the others through package output, which
// names the agent of each trace (analysis.Trace.Vantage).
type resultsOut struct {
	o    output.Options
	w    *output.Writer // vert, horiz, atlas, viz
	dst  io.Writer      // json, dot
	file *os.File       // json, dot to --output
	dot  map[string][]*analysis.Trace
	// agents in the order their first result came (dot).
	agents []string
	buf    bytes.Buffer
}

// openOutput opens what o names, as output.Open does.
func openOutput(o output.Options) (*resultsOut, error) {
	ro := &resultsOut{o: o, dst: o.Stdout, dot: map[string][]*analysis.Trace{}}
	if o.Format != "json" && o.Format != "dot" {
		w, err := output.Open(o)
		switch {
		case err != nil && o.Format == "viz" && o.Output == "":
			return nil, fmt.Errorf("--bind %s: %w", o.Bind, err)
		case err != nil:
			return nil, fmt.Errorf("--output: %w", err)
		}
		ro.w = w
		return ro, nil
	}
	if o.Output != "" && o.Output != "-" {
		f, err := os.Create(o.Output)
		if err != nil {
			return nil, fmt.Errorf("--output: %w", err)
		}
		ro.file, ro.dst = f, f
	}
	return ro, nil
}

// raw writes r's record as it is, in --format json: nothing to change.
func (ro *resultsOut) raw(r *fleet.Result) error {
	if _, err := ro.dst.Write(r.Record); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	return nil
}

// result writes t, the trace of r.
func (ro *resultsOut) result(r *fleet.Result, t *analysis.Trace) error {
	switch ro.o.Format {
	case "json":
		ro.buf.Reset()
		if err := writeRecord(&ro.buf, r.Agent, r.Measurement, t, analysis.Options{Dedup: ro.o.Dedup}); err != nil {
			return err
		}
		if _, err := ro.dst.Write(ro.buf.Bytes()); err != nil {
			return fmt.Errorf("writing results: %w", err)
		}
		return nil
	case "dot":
		if ro.dot[r.Agent] == nil {
			ro.agents = append(ro.agents, r.Agent)
		}
		ro.dot[r.Agent] = append(ro.dot[r.Agent], t)
		return nil
	}
	return ro.w.Result(t)
}

// writeRecord writes t as the results stream holds it: the JSON record of
// --format json with "agent" and "measurement" first.
func writeRecord(w *bytes.Buffer, agent, id string, t *analysis.Trace, opts analysis.Options) error {
	var line bytes.Buffer
	if err := analysis.WriteJSON(&line, t, opts); err != nil {
		return err
	}
	b := line.Bytes()
	if len(b) < 2 || b[0] != '{' {
		return fmt.Errorf("result of %s: not a JSON object", t.Destination)
	}
	a, _ := json.Marshal(agent)
	m, _ := json.Marshal(id)
	fmt.Fprintf(w, `{"agent":%s,"measurement":%s,`, a, m)
	w.Write(b[1:])
	return nil
}

// finish writes what waits for the end: the digraphs, the browser view.
func (ro *resultsOut) finish() error {
	if ro.w != nil {
		err := ro.w.Finish()
		if err != nil && ro.o.Output != "" {
			err = fmt.Errorf("--output %w", err)
		}
		return err
	}
	for _, a := range ro.agents {
		ro.buf.Reset()
		fmt.Fprintf(&ro.buf, "// agent %s\n", a)
		var err error
		if ts := ro.dot[a]; len(ts) == 1 {
			err = analysis.WriteDOT(&ro.buf, ts[0], analysis.Options{Dedup: ro.o.Dedup})
		} else {
			err = analysis.WriteGroupDOT(&ro.buf, ts)
		}
		if err != nil {
			return err
		}
		if _, err := ro.dst.Write(ro.buf.Bytes()); err != nil {
			return fmt.Errorf("writing results: %w", err)
		}
	}
	if f := ro.file; f != nil {
		ro.file = nil
		if err := f.Close(); err != nil {
			return fmt.Errorf("--output %s: %w", ro.o.Output, err)
		}
	}
	return nil
}

// abort closes what finish did not.
func (ro *resultsOut) abort() {
	if ro.w != nil {
		ro.w.Abort()
	}
	if ro.file != nil {
		ro.file.Close()
	}
}

// follower reads the results of a measurement into an output, and tells
// each agent's outcome.
type follower struct {
	m   *fleet.Measurement
	out *resultsOut
	// names, when set, names the destinations as the command line did.
	names    *targets.Set
	annotate *annotate.Annotator
	stderr   io.Writer
}

// follow writes the results until every agent's final record is in, or
// ctx ends; it returns the exit status and its error.
func (f *follower) follow(ctx context.Context) (int, error) {
	var failed, unreached int
	err := f.m.Results(ctx, func(r *fleet.Result) error {
		if fin := r.Final; fin != nil {
			switch {
			case fin.Error != "":
				failed++
				writeLine(f.stderr, "%s: %s", fin.Agent, fin.Error)
			default:
				if fin.Reached < fin.Destinations {
					unreached++
				}
				writeLine(f.stderr, "%s: %s", fin.Agent, outcome(fin))
			}
			return nil
		}
		if f.asStored(r) {
			return f.out.raw(r)
		}
		t, err := r.Trace()
		if err != nil {
			return err
		}
		t.Vantage = r.Agent
		if f.names != nil && f.names.Contains(t.Destination) {
			t.Name = f.names.Name(t.Destination)
		}
		f.annotate.Apply(ctx, []*analysis.Trace{t})
		return f.out.result(r, t)
	})
	interrupted := err != nil && ctx.Err() != nil
	if err != nil && !interrupted {
		return ExitError, fmt.Errorf("%w (the results written are partial)", err)
	}
	if interrupted && f.out.o.Format == "viz" && f.out.o.Output == "" {
		f.out.abort() // not served: the user asked to stop
	} else if err := f.out.finish(); err != nil {
		return ExitError, err
	}
	switch {
	case interrupted:
		return ExitInterrupted, ctx.Err()
	case failed > 0:
		return ExitError, fmt.Errorf("%d of %d agents did not run measurement %s", failed, len(f.m.Agents), f.m.ID)
	case unreached > 0:
		return ExitUnreached, nil
	}
	return 0, nil
}

// asStored says that r's record is written as it is: --format json
// without --dedup nor annotations, its destination given by its address.
func (f *follower) asStored(r *fleet.Result) bool {
	if f.out.o.Format != "json" || f.out.o.Dedup || f.annotate != nil {
		return false
	}
	if f.names == nil {
		return true
	}
	a, err := netip.ParseAddr(r.Destination)
	return err == nil && f.names.Name(a) == r.Destination
}

// outcome is the summary of an agent's measurement that ran.
func outcome(fin *fleet.Final) string {
	s := fmt.Sprintf("%d of %d destinations reached", fin.Reached, fin.Destinations)
	if fin.Excluded > 0 {
		s += fmt.Sprintf(", %d excluded by the agent", fin.Excluded)
	}
	return s
}
