package main

import (
	"strings"
	"testing"
)

// TestAnnotationFlagErrors checks that bad tables and resolver settings fail
// in one line before any probe.
func TestAnnotationFlagErrors(t *testing.T) {
	bad := writeFile(t, "bad.txt", "hello world\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--asn-db", "/no/such/db", "x"}, "--asn-db asn: open /no/such/db"},
		{[]string{"--asn-db", bad, "x"}, "bad.txt: asn: line 1: not an AS table"},
		{[]string{"--asn-db", "testdata/lab-asn.pfx2as", "--asn-db-format", "pyasn", "x"}, "line 1 (pyasn)"},
		{[]string{"--asn-db", "testdata/lab-asn.pfx2as", "--asn-db-format", "mrt", "x"}, `--asn-db-format "mrt"`},
		{[]string{"--asn-db-format", "pfx2as", "x"}, "--asn-db-format needs --asn-db"},
		{[]string{"--ixp-db", bad, "x"}, "--ixp-db"},
		{[]string{"--rdns-server", "127.0.0.1", "x"}, "--rdns-server needs --rdns"},
		{[]string{"--rdns", "--rdns-server", "dns.example", "x"}, `--rdns-server "dns.example"`},
	} {
		out := runCmd(tc.args...)
		if out.code != exitError {
			t.Errorf("%q: exit %d, want %d", tc.args, out.code, exitError)
		}
		lines := strings.Split(strings.TrimSpace(out.stderr), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("%q: stderr %q, want one line with %q", tc.args, out.stderr, tc.want)
		}
	}
}
