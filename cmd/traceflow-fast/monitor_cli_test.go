package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The monitor refuses bad input in one line, before it opens any socket
// (so without privileges): its own flags, a state file that is not one
// (left as it is), a metrics address that is not exactly one.
func TestMonitorBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "state")
	if err := os.WriteFile(bad, []byte("{\"groups\": []}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "no destination given (usage: traceflow-fast monitor"},
		{[]string{"--interval", "0s", "x"}, "--interval 0s"},
		{[]string{"--interval", "5", "x"}, `"5" for flag -interval`},
		{[]string{"--confirm", "0", "x"}, "--confirm 0"},
		{[]string{"--hop-series", "-1", "x"}, "--hop-series -1"},
		{[]string{"--format", "vert", "x"}, `--format "vert"`},
		{[]string{"--ignore-hop", "10.0.0.300", "x"}, "--ignore-hop"},
		{[]string{"-f", "-"}, "--file -"},
		{[]string{"--paths", "0", "x"}, `--paths "0"`},
		{[]string{"--dedup", "x"}, "dedup"},
		{[]string{"--state", bad, "10.99.0.1"}, "--state " + bad + ": not a traceflow-fast monitor state file"},
		{[]string{"--metrics", ":9108", "10.99.0.1"}, `--metrics ":9108"`},
		{[]string{"--metrics", "localhost:9108", "10.99.0.1"}, `--metrics "localhost:9108"`},
		{[]string{"10.99.0.1", "fd00::1"}, "fd00::1"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"traceflow-fast", "monitor"}, tc.args...), &stdout, &stderr)
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if code != exitError || len(lines) != 1 || !strings.Contains(lines[0], tc.want) || !strings.HasPrefix(lines[0], "traceflow-fast: ") {
			t.Errorf("monitor %q: exit %d, stderr %q, want one line with %q", tc.args, code, stderr.String(), tc.want)
		}
		if stdout.Len() != 0 {
			t.Errorf("monitor %q: wrote to stdout: %q", tc.args, stdout.String())
		}
	}
	if b, _ := os.ReadFile(bad); string(b) != "{\"groups\": []}\n" {
		t.Errorf("the state file refused became %q", b)
	}
}

func TestMonitorHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"traceflow-fast", "monitor", "--help"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("monitor --help exit %d", code)
	}
	for _, want := range []string{"--interval", "--confirm", "--metrics", "--state", "--ignore-hop", "--paths", "--rate", "SIGHUP", "baseline", "path_change"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("monitor --help lacks %q", want)
		}
	}
	for _, gone := range []string{"--dedup", "--expect", "--pcap", "--bind", "--progress"} {
		if strings.Contains(stdout.String(), gone) {
			t.Errorf("monitor --help offers %s, which a monitor has no use for", gone)
		}
	}
}
