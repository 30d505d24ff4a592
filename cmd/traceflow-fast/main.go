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
	"strings"

	"github.com/urfave/cli/v2"
)

// Exit codes.
const (
	exitOK          = 0 // every destination reached
	exitError       = 1 // bad input, missing privilege, failure
	exitUnreached   = 2 // the trace ran, but some destination was not reached
	exitInterrupted = 3 // stopped by a signal: results are partial
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
	err := app.Run(permuteArgs(app, args))
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

// permuteArgs moves flags written after the destinations in front of them:
// urfave/cli stops parsing flags at the first positional argument, and
// `traceflow-fast HOST --format horiz` must not silently ignore the flag.
// A "--" ends flag parsing as usual.
func permuteArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range app.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	// A subcommand's arguments are permuted the same way with its own
	// flags (`diff a.jsonl b.jsonl --format json`), unless it has
	// subcommands of its own or parses its arguments itself.
	for _, c := range app.Commands {
		for _, n := range c.Names() {
			if args[1] == n {
				if len(c.Subcommands) > 0 || c.SkipFlagParsing {
					return args
				}
				return append([]string{args[0]}, permuteArgs(&cli.App{Flags: c.Flags}, args[1:])...)
			}
		}
	}
	var flags, pos []string
	rest := args[1:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "--":
			pos = append(pos, rest[i+1:]...)
			i = len(rest)
		case len(a) > 1 && a[0] == '-':
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if strings.Contains(name, "=") {
				continue
			}
			if takesValue[name] && i+1 < len(rest) {
				flags = append(flags, rest[i+1])
				i++
			}
		default:
			pos = append(pos, a)
		}
	}
	out := append([]string{args[0]}, flags...)
	if len(pos) > 0 {
		out = append(out, "--")
		out = append(out, pos...)
	}
	return out
}
