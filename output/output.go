// Package output writes the results of a run as they come, in the format
// a user chose (tables, JSON Lines, DOT, RIPE Atlas results, the browser
// view), and shows a run's progress on a terminal.
package output

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/viz"
)

// Options say where and how results are written.
type Options struct {
	// Format is vert (a row per path ID, the default), horiz (a column
	// per path ID), json, dot, atlas or viz.
	Format string
	// Output is the file written; "" or "-" is Stdout. The browser view
	// without an Output is served on Bind.
	Output string
	Bind   string
	// Dedup prints each distinct path once (tables, JSON, DOT).
	Dedup bool
	// Keep keeps every result, for Kept.
	Keep           bool
	Stdout, Stderr io.Writer
}

// Writer writes each destination's result as soon as it is finished, as
// one write of whole records, so that memory does not grow with the target
// list and a crash loses only what was in progress. The browser view and
// DOT draw every result at once (several destinations grouped by their
// router paths): those are kept, and written by Finish. It is a
// tracer.Sink.
type Writer struct {
	o    Options
	ln   net.Listener // --format viz without --output: where it is served
	w    io.Writer    // stdout or the --output file; nil for viz
	file *os.File
	buf  bytes.Buffer
	n    int
	kept []*analysis.Trace
	keep bool
}

// Open opens what o names: the output file, or the listener of the
// browser view. Call it before a program drops its privileges (root
// without capabilities may not create files in a user's directory, nor
// listen on a port below 1024).
func Open(o Options) (*Writer, error) {
	rw := &Writer{o: o, keep: o.Format == "viz" || o.Format == "dot" || o.Keep}
	switch {
	case o.Format == "viz" && o.Output == "":
		ln, err := net.Listen("tcp", o.Bind)
		if err != nil {
			return nil, err
		}
		rw.ln = ln
	case o.Format == "viz":
		// Written at the end, in one piece.
		f, err := os.OpenFile(o.Output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, err
		}
		rw.file = f
	case o.Output == "" || o.Output == "-":
		rw.w = o.Stdout
	default:
		f, err := os.OpenFile(o.Output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, err
		}
		rw.file, rw.w = f, f
	}
	return rw, nil
}

// Result writes the result of one destination.
func (rw *Writer) Result(t *analysis.Trace) error {
	if rw.keep {
		rw.kept = append(rw.kept, t)
	}
	if rw.w == nil || rw.o.Format == "dot" {
		return nil
	}
	rw.buf.Reset()
	b := &rw.buf
	opts := analysis.Options{Dedup: rw.o.Dedup}
	var err error
	switch rw.o.Format {
	case "json":
		err = analysis.WriteJSON(b, t, opts)
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

// Kept returns the results written so far, when they are kept.
func (rw *Writer) Kept() []*analysis.Trace { return rw.kept }

// Finish writes what waited for the end (the browser view, written or
// served until SIGINT or SIGTERM) and closes the output file.
func (rw *Writer) Finish() error {
	if rw.ln != nil {
		ln := rw.ln
		rw.ln = nil
		return serveViz(rw.o.Stderr, rw.kept, ln)
	}
	switch rw.o.Format {
	case "viz":
		rw.buf.Reset()
		if err := viz.WriteHTML(&rw.buf, rw.kept); err != nil {
			return fmt.Errorf("%s: %w", rw.o.Output, err)
		}
		if _, err := rw.file.Write(rw.buf.Bytes()); err != nil {
			return fmt.Errorf("%s: %w", rw.o.Output, err)
		}
	case "dot":
		if err := rw.writeDOT(); err != nil {
			return err
		}
	}
	if rw.file != nil {
		f := rw.file
		rw.file = nil
		if err := f.Close(); err != nil {
			return fmt.Errorf("%s: %w", rw.o.Output, err)
		}
	}
	return nil
}

// writeDOT writes the digraph of one destination, or of several grouped
// by their router paths.
func (rw *Writer) writeDOT() error {
	rw.buf.Reset()
	var err error
	switch len(rw.kept) {
	case 0:
		return nil
	case 1:
		err = analysis.WriteDOT(&rw.buf, rw.kept[0], analysis.Options{Dedup: rw.o.Dedup})
	default:
		err = analysis.WriteGroupDOT(&rw.buf, rw.kept)
	}
	if err != nil {
		return err
	}
	if _, err := rw.w.Write(rw.buf.Bytes()); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	return nil
}

// Abort closes the output file and the listener if Finish was not
// reached.
func (rw *Writer) Abort() {
	if rw.file != nil {
		rw.file.Close()
	}
	if rw.ln != nil {
		rw.ln.Close()
	}
}
