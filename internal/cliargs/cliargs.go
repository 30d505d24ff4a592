// Package cliargs fixes how urfave/cli reads a command line for commands
// that take flags anywhere among their arguments.
package cliargs

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// Permute moves the flags written after positional arguments in front of
// them: urfave/cli stops parsing flags at the first positional argument,
// and `prog HOST --format horiz` must not silently ignore the flag. A "--"
// ends flag parsing as usual. A subcommand's arguments are permuted the
// same way with its own flags, unless it has subcommands of its own or
// parses its arguments itself.
func Permute(app *cli.App, args []string) []string {
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
	for _, c := range app.Commands {
		for _, n := range c.Names() {
			if args[1] == n {
				if len(c.Subcommands) > 0 || c.SkipFlagParsing {
					return args
				}
				return append([]string{args[0]}, Permute(&cli.App{Flags: c.Flags}, args[1:])...)
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
