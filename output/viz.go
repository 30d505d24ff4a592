package output

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/viz"
)

// serveViz serves the browser view of traces on the listener, the page at / and
// its data at /nodes.json as the original traceflow did, until SIGINT or
// SIGTERM. The URL goes to standard error. A trace that was interrupted is
// not served: the user asked to stop.
func serveViz(stderr io.Writer, traces []*analysis.Trace, ln net.Listener) error {
	defer ln.Close()
	for _, t := range traces {
		if t.Partial {
			fmt.Fprintln(stderr, "interrupted: not serving the browser view of partial results (--output FILE keeps them)")
			return nil
		}
	}
	h, err := viz.NewHandler(traces)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(stderr, "serving the browser view at http://%s/ (its data at /nodes.json); Ctrl-C stops\n", ln.Addr())
	return viz.Serve(ctx, ln, h)
}
