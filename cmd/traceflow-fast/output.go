package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// resultWriter writes each destination's result as soon as it is finished,
// as one write of whole records, so that memory does not grow with the
// target list and a crash loses only what was in progress. The browser
// view (--format viz) and --expect need every result: those are kept.
type resultWriter struct {
	o    *options
	w    io.Writer // stdout or the --output file; nil for viz
	file *os.File
	buf  bytes.Buffer
	n    int
	kept []*analysis.Trace
	keep bool
}

func newResultWriter(o *options) (*resultWriter, error) {
	rw := &resultWriter{o: o, keep: o.format == "viz" || o.expect != nil}
	switch {
	case o.format == "viz":
		// Written (or served) at the end, in one piece.
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
	if rw.o.format == "viz" {
		if rw.o.output == "" {
			return serveViz(rw.o, rw.kept)
		}
		return writeFileAtomic(rw.o.output, func(w io.Writer) error { return writeViz(w, rw.kept) })
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

// abort closes the --output file if finish was not reached.
func (rw *resultWriter) abort() {
	if rw.file != nil {
		rw.file.Close()
	}
}

// writeFileAtomic writes name through a temporary file renamed into place,
// so that a crash never leaves half a file.
func writeFileAtomic(name string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return fmt.Errorf("--output %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("--output %s: %w", name, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("--output %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("--output %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("--output %s: %w", name, err)
	}
	return nil
}
