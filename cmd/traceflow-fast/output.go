package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// resultWriter writes each destination's result as soon as it is finished,
// as one write of whole records, so that memory does not grow with the
// target list and a crash loses only what was in progress. The browser
// view (--format viz) and --expect need every result: those are kept.
type resultWriter struct {
	o    *options
	ln   net.Listener // --format viz without --output: where it is served
	w    io.Writer    // stdout or the --output file; nil for viz
	file *os.File
	buf  bytes.Buffer
	n    int
	kept []*analysis.Trace
	keep bool
}

func newResultWriter(o *options) (*resultWriter, error) {
	rw := &resultWriter{o: o, keep: o.format == "viz" || o.expect != nil}
	// Files and the listener are opened now, before the run drops its
	// privileges (root without capabilities may not create files in a
	// user's directory, nor listen on a port below 1024).
	switch {
	case o.format == "viz" && o.output == "":
		ln, err := net.Listen("tcp", o.bind)
		if err != nil {
			return nil, fmt.Errorf("--bind %s: %w", o.bind, err)
		}
		rw.ln = ln
	case o.format == "viz":
		// Written at the end, in one piece.
		f, err := os.OpenFile(o.output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, fmt.Errorf("--output: %w", err)
		}
		rw.file = f
	case o.output == "" || o.output == "-":
		rw.w = o.stdout
	default:
		f, err := os.OpenFile(o.output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, fmt.Errorf("--output: %w", err)
		}
		rw.file, rw.w = f, f
	}
	return rw, nil
}

// write writes the result of one destination.
func (rw *resultWriter) write(t *analysis.Trace) error {
	if rw.keep {
		rw.kept = append(rw.kept, t)
	}
	if rw.w == nil {
		return nil
	}
	rw.buf.Reset()
	b := &rw.buf
	opts := analysis.Options{Dedup: rw.o.dedup}
	var err error
	switch rw.o.format {
	case "json":
		err = analysis.WriteJSON(b, t, opts)
	case "dot":
		err = analysis.WriteDOT(b, t, opts)
	case "atlas":
		err = analysis.WriteAtlas(b, t, analysis.AtlasOptions{})
	case "horiz":
		if rw.n > 0 {
			b.WriteByte('\n')
		}
		err = analysis.WriteHoriz(b, t, opts)
	default:
		if rw.n > 0 {
			b.WriteByte('\n')
		}
		err = analysis.WriteVert(b, t, opts)
	}
	if err != nil {
		return err
	}
	rw.n++
	if _, err := rw.w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	return nil
}

// finish writes what waited for the end and closes the --output file.
func (rw *resultWriter) finish() error {
	if rw.ln != nil {
		ln := rw.ln
		rw.ln = nil
		return serveViz(rw.o, rw.kept, ln)
	}
	if rw.o.format == "viz" {
		rw.buf.Reset()
		if err := writeViz(&rw.buf, rw.kept); err != nil {
			return fmt.Errorf("--output %s: %w", rw.o.output, err)
		}
		if _, err := rw.file.Write(rw.buf.Bytes()); err != nil {
			return fmt.Errorf("--output %s: %w", rw.o.output, err)
		}
	}
	if rw.file != nil {
		f := rw.file
		rw.file = nil
		if err := f.Close(); err != nil {
			return fmt.Errorf("--output %s: %w", rw.o.output, err)
		}
	}
	return nil
}

// abort closes the --output file and the listener if finish was not
// reached.
func (rw *resultWriter) abort() {
	if rw.file != nil {
		rw.file.Close()
	}
	if rw.ln != nil {
		rw.ln.Close()
	}
}
