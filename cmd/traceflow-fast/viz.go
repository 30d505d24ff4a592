package main

import (
	"fmt"
	"net"
	"strconv"

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
