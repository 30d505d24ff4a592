package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/viz"
)

// checkViz validates --format viz before anything is sent: the binary must
// have the vis-network library built in, and without --output the page is
// served on --bind, which must be HOST:PORT.
func checkViz(o *options) error {
	if !viz.Available() {
		return fmt.Errorf("--format viz: this binary was %v", viz.ErrNoLibrary)
	}
	if o.output != "" {
		return nil
	}
	_, port, err := net.SplitHostPort(o.bind)
	if err != nil {
		return fmt.Errorf("--bind %q: %v (want HOST:PORT, such as 127.0.0.1:8081)", o.bind, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("--bind %q: bad port %q", o.bind, port)
	}
	return nil
}

// writeViz writes the browser view of traces, one HTML page, to w.
func writeViz(w io.Writer, traces []*analysis.Trace) error {
	return viz.WriteHTML(w, traces)
}

// serveViz serves the browser view of traces on --bind, the page at / and
// its data at /nodes.json as the original traceflow did, until SIGINT or
// SIGTERM. The URL goes to standard error. A trace that was interrupted is
// not served: the user asked to stop.
func serveViz(o *options, traces []*analysis.Trace, ln net.Listener) error {
	defer ln.Close()
	for _, t := range traces {
		if t.Partial {
			fmt.Fprintln(o.stderr, "interrupted: not serving the browser view of partial results (--output FILE keeps them)")
			return nil
		}
	}
	h, err := viz.NewHandler(traces)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(o.stderr, "serving the browser view at http://%s/ (its data at /nodes.json); Ctrl-C stops\n", ln.Addr())
	return viz.Serve(ctx, ln, h)
}
