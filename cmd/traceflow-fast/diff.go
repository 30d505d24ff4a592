package main

import (
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/fleet/fleetcmd"
)

// Exit codes of `traceflow-fast diff`, for CI gates.
const (
	exitDiffSame    = 0 // nothing changed
	exitDiffChanged = 1 // some destination changed
	exitDiffError   = 2 // bad input
)

// diffHelp is the description diff --help prints.
//
//go:embed help/diff.txt
var diffHelp string

func diffCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:            "diff",
		Usage:           "compare the distinct paths of two results (exit 0 same, 1 changed, 2 error)",
		UsageText:       "traceflow-fast diff [options] BEFORE AFTER",
		Description:     strings.TrimSpace(diffHelp),
		HideHelpCommand: true,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "text", Usage: "text (for people) or json (one object, for machines)"},
			&cli.StringSliceFlag{Name: "ignore-hop", Usage: "a known-noisy hop `ADDR[/LEN]`: where either path has an address inside it, the paths agree at that TTL whatever the other has (repeatable)"},
		}, fleetcmd.DiffFlags()...),
		Action: func(c *cli.Context) error {
			fail := func(err error) error { return &exitErr{code: exitDiffError, err: fmt.Errorf("diff: %w", err)} }
			if c.NArg() != 2 {
				return fail(fmt.Errorf("want two files, got %d (usage: %s)", c.NArg(), c.Command.UsageText))
			}
			format := c.String("format")
			if format != "text" && format != "json" {
				return fail(fmt.Errorf("--format %q: must be text or json", format))
			}
			ignore, err := parseIgnoreHops(c.StringSlice("ignore-hop"))
			if err != nil {
				return fail(err)
			}
			names := c.Args().Slice()
			if names[0] == "-" && names[1] == "-" {
				return fail(errors.New("only one of the two files can be standard input"))
			}
			var files [2]*analysis.PathFile
			for i, name := range names {
				if files[i], err = fleetcmd.OpenPathFile(c, name, os.Stdin); err != nil { // a file, or nats:ID
					return fail(err)
				}
			}
			var sides [2][]*analysis.Trace
			for i := range files {
				if sides[i], err = files[i].TracesBeside(names[i], files[1-i], names[1-i]); err != nil {
					return fail(err)
				}
			}
			d := analysis.DiffTraces(sides[0], sides[1], analysis.DiffOptions{Ignore: ignore})
			style := analysis.DiffStyle{Before: names[0], After: names[1]}
			if format == "json" {
				err = analysis.WriteDiffJSON(stdout, d, style)
			} else {
				err = analysis.WriteDiff(stdout, d, style)
			}
			if err != nil {
				return fail(err)
			}
			if d.Changed() {
				return &exitErr{code: exitDiffChanged}
			}
			return nil
		},
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return &exitErr{code: exitDiffError, err: fmt.Errorf("diff: %v (see traceflow-fast diff --help)", err)}
		},
	}
}

func parseIgnoreHops(vals []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range vals {
		p, err := analysis.ParseIgnore(v)
		if err != nil {
			return nil, fmt.Errorf("--ignore-hop %w", err)
		}
		out = append(out, p)
	}
	return out, nil
}

// expectation is --expect: the paths a trace must find.
type expectation struct {
	file   string
	paths  *analysis.PathFile
	ignore []netip.Prefix
}

// parseExpect reads --expect FILE up front, so that a bad file fails before
// any probe is sent.
func parseExpect(c *cli.Context, o *options) error {
	ignore, err := parseIgnoreHops(c.StringSlice("ignore-hop"))
	if err != nil {
		return err
	}
	file := c.String("expect")
	if file == "" {
		if len(ignore) > 0 {
			return errors.New("--ignore-hop needs --expect (or use it with traceflow-fast diff)")
		}
		return nil
	}
	pf, err := analysis.OpenPathFile(file, os.Stdin)
	if err != nil {
		return fmt.Errorf("--expect %w", err)
	}
	if pf.NeedsDestination() && len(o.dsts) != 1 {
		return fmt.Errorf("--expect %s lists paths without a \"destination ADDR\" line, so it needs exactly one destination, not %d", file, len(o.dsts))
	}
	o.expect = &expectation{file: file, paths: pf, ignore: ignore}
	return nil
}

// check compares the traces with the expected paths. It returns nil when
// they agree, else writes the explanation to w and returns the exit error.
func (e *expectation) check(traces []*analysis.Trace, w io.Writer) error {
	if e == nil || len(traces) == 0 {
		return nil
	}
	want, err := e.paths.Traces(traces[0].Destination)
	if err != nil {
		return &exitErr{code: exitError, err: fmt.Errorf("--expect %s: %w", e.file, err)}
	}
	d := analysis.DiffTraces(want, traces, analysis.DiffOptions{Ignore: e.ignore})
	if !d.Changed() {
		return nil
	}
	if err := analysis.WriteDiff(w, d, analysis.DiffStyle{Before: e.file, After: "trace", Expect: true}); err != nil {
		return &exitErr{code: exitError, err: err}
	}
	return &exitErr{code: exitMismatch, err: fmt.Errorf("the paths found differ from the expected ones in %s", e.file)}
}
