package cliargs

import (
	"slices"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestPermute(t *testing.T) {
	app := &cli.App{Flags: []cli.Flag{
		&cli.StringFlag{Name: "format"}, &cli.BoolFlag{Name: "dedup"}, &cli.StringFlag{Name: "paths", Aliases: []string{"p"}},
		&cli.Float64Flag{Name: "wait"},
	}}
	for _, tc := range []struct{ in, want []string }{
		{[]string{"tf", "10.0.0.1"}, []string{"tf", "--", "10.0.0.1"}},
		{[]string{"tf", "10.0.0.1", "--format", "horiz"}, []string{"tf", "--format", "horiz", "--", "10.0.0.1"}},
		{[]string{"tf", "a", "--dedup", "b", "-p", "8"}, []string{"tf", "--dedup", "-p", "8", "--", "a", "b"}},
		{[]string{"tf", "a", "--wait=0.5"}, []string{"tf", "--wait=0.5", "--", "a"}},
		{[]string{"tf", "--paths", "16", "a"}, []string{"tf", "--paths", "16", "--", "a"}},
		{[]string{"tf", "a", "--", "--weird-name"}, []string{"tf", "--", "a", "--weird-name"}},
		{[]string{"tf", "--help"}, []string{"tf", "--help"}},
	} {
		if got := Permute(app, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("Permute(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPermuteSubcommand(t *testing.T) {
	app := &cli.App{Commands: []*cli.Command{
		{Name: "diff", Flags: []cli.Flag{&cli.StringFlag{Name: "format"}}},
		{Name: "raw", SkipFlagParsing: true},
	}}
	for _, tc := range []struct{ in, want []string }{
		{[]string{"tf", "diff", "a", "b", "--format", "json"}, []string{"tf", "diff", "--format", "json", "--", "a", "b"}},
		{[]string{"tf", "raw", "a", "--format", "json"}, []string{"tf", "raw", "a", "--format", "json"}},
	} {
		if got := Permute(app, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("Permute(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
