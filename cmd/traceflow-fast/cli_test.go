package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestBadFlags checks that invalid input gives one line naming it and exit
// status 1, before any socket is opened (so no privilege is needed).
func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "no destination"},
		{[]string{"--paths", "0", "x"}, `--paths "0"`},
		{[]string{"--paths", "many", "x"}, `--paths "many"`},
		{[]string{"--confidence", "40", "x"}, "--confidence 40"},
		{[]string{"--max-paths", "0", "x"}, "--max-paths 0"},
		{[]string{"x", "--paths", "5000"}, `--paths "5000"`},
		{[]string{"--ttl", "0", "x"}, "--ttl 0"},
		{[]string{"--ttl", "65", "x"}, "--ttl 65"},
		{[]string{"--first-ttl", "9", "--ttl", "8", "x"}, "--first-ttl 9"},
		{[]string{"--srcport", "65530", "--paths", "16", "x"}, "--srcport 65530"},
		{[]string{"--dstport", "0", "x"}, "--dstport 0"},
		{[]string{"--wait", "0", "x"}, "--wait 0"},
		{[]string{"--wait", "7", "x"}, "--wait 7"},
		{[]string{"--wait", "abc", "x"}, "abc"},
		{[]string{"--retries", "-1", "x"}, "--retries -1"},
		{[]string{"--gap-limit", "0", "x"}, "--gap-limit 0"},
		{[]string{"--tos", "256", "x"}, "--tos 256"},
		{[]string{"--format", "xml", "x"}, `--format "xml"`},
		{[]string{"--source", "::ffff:10.0.0.1", "x"}, `--source "::ffff:10.0.0.1"`},
		{[]string{"--source", "fe80::1%eth0", "x"}, `--source "fe80::1%eth0"`},
		{[]string{"-6", "--source", "10.0.0.2", "x"}, `--source "10.0.0.2"`},
		{[]string{"-6", "--protocol", "tcp", "x"}, `--protocol tcp`},
		{[]string{"x", "--ipv6", "--protocol", "icmp"}, `--protocol icmp`},
		{[]string{"--no-such-flag", "x"}, "no-such-flag"},
		{[]string{"-6x", "x"}, "6x"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"traceflow-fast"}, tc.args...), &stdout, &stderr)
		if code != exitError {
			t.Errorf("%q: exit %d, want %d", tc.args, code, exitError)
		}
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], tc.want) || !strings.HasPrefix(lines[0], "traceflow-fast: ") {
			t.Errorf("%q: stderr %q, want one line with %q", tc.args, stderr.String(), tc.want)
		}
		if stdout.Len() != 0 {
			t.Errorf("%q: wrote to stdout: %q", tc.args, stdout.String())
		}
	}
}

func TestHelpExplains(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"traceflow-fast", "--help"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("--help exit %d", code)
	}
	for _, want := range []string{"--paths", "--ttl", "--srcport", "--dstport", "--wait", "--format", "--bind", "--dedup", "--debug", "CAP_NET_RAW", "CAP_BPF", "setcap"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}
