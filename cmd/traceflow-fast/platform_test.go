package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
)

// TestNeedLinux runs the command as it behaves on other systems: a trace
// ends at once, before its flags or targets are read, with one line saying
// why and exit status 1, while diff, which needs no socket, still works.
// None of the arguments could send a probe should the check be missing
// (no such file, a bad flag, no such interface): the trace would fail on
// them with another message.
func TestNeedLinux(t *testing.T) {
	defer func(g string) { goos = g }(goos)
	p := diamondPaths
	before := writeResult(t, "before.jsonl", traceOf("10.99.0.1", p[0], p[1], p[2], p[3]))
	after := writeResult(t, "after.jsonl", traceOf("10.99.0.1", p[0], p[1], p[2], p[0]))
	missing := filepath.Join(t.TempDir(), "no-such-targets.txt")
	for _, sys := range []string{"darwin", "freebsd", "windows"} {
		goos = sys
		want := "traceflow-fast: tracing needs Linux (AF_PACKET sockets and socket filters); this is " + sys + "\n"
		for _, args := range [][]string{
			{"-f", missing},
			{"--paths", "many", "192.0.2.1"},
			{"--interface", "tfx-none0", "--format", "json", "192.0.2.1"},
		} {
			out := runCmd(args...)
			if out.code != exitError || out.stderr != want || out.stdout != "" {
				t.Errorf("%s: %q: exit %d, stdout %q, stderr %q; want exit %d and stderr %q",
					sys, args, out.code, out.stdout, out.stderr, exitError, want)
			}
		}
		out := runCmd("diff", before, after)
		if out.code != exitDiffChanged || out.stderr != "" || !strings.Contains(out.stdout, "1 of 1 destinations changed") {
			t.Errorf("%s: diff: exit %d, stdout %q, stderr %q; want the change reported", sys, out.code, out.stdout, out.stderr)
		}
		if out := runCmd("--help"); out.code != exitOK || !strings.Contains(out.stdout, "traceflow-fast [options] DESTINATION") {
			t.Errorf("%s: --help: exit %d, stdout %q, stderr %q", sys, out.code, out.stdout, out.stderr)
		}
	}
}

// TestOtherSystemsBuild builds and vets the whole module, tests included,
// for systems other than Linux: every platform-specific file must have its
// counterpart there. It needs only the Go toolchain.
func TestOtherSystemsBuild(t *testing.T) {
	testenv.SkipIfShort(t, "builds the module three times")
	gobin := testenv.RequireTool(t, "go", "golang-go")
	root := moduleRoot(t, gobin)
	for _, sys := range []string{"darwin", "freebsd", "windows"} {
		t.Run(sys, func(t *testing.T) {
			t.Parallel()
			for _, verb := range []string{"build", "vet"} {
				cmd := exec.Command(gobin, verb, "./...")
				cmd.Dir = root
				cmd.Env = append(os.Environ(), "GOOS="+sys, "CGO_ENABLED=0", "GOFLAGS=")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("GOOS=%s go %s ./...: %v\n%s", sys, verb, err, out)
				}
			}
		})
	}
}

// moduleRoot returns the directory of this module's go.mod.
func moduleRoot(t *testing.T, gobin string) string {
	t.Helper()
	out, err := exec.Command(gobin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		t.Fatalf("go env GOMOD = %q: not in a module", mod)
	}
	return filepath.Dir(mod)
}
