// Command traceflow-fast finds every path between this host and one or more
// destinations: it keeps the UDP 5-tuple of each path ID fixed while the TTL
// varies, so per-flow load balancers send all of a path ID's probes the same
// way, and varies the source port from one path ID to the next.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/traceflow-fast/traceflow-fast/internal/cliargs"
)

// Exit codes.
const (
	exitOK          = 0 // every destination reached
	exitError       = 1 // bad input, missing privilege, failure
	exitUnreached   = 2 // the trace ran, but some destination was not reached
	exitInterrupted = 3 // stopped by a signal: results are partial
	exitMismatch    = 4 // the trace ran, but its paths differ from the ones --expect gives
)

// exitErr carries an exit code through urfave/cli to main.
type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}
func (e *exitErr) Unwrap() error { return e.err }

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run is main without os.Exit, so that tests can call it.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.Run(cliargs.Permute(app, args))
	if err == nil {
		return exitOK
	}
	var ee *exitErr
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "traceflow-fast: %v\n", ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "traceflow-fast: %v\n", err)
	return exitError
}
