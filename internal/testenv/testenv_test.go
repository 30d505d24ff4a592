package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// ruleChildEnv makes TestRule run as a child that calls one function of
// the package (the value names it) and logs whether it went on after it.
const ruleChildEnv = "TRACEFLOW_FAST_TESTENV_CHILD"

const (
	reason = "needs a unicorn"
	after  = "went on after the call"
)

// ruleChild is TestRule in the child process.
func ruleChild(t *testing.T, what string) {
	switch what {
	case "Skip":
		Skip(t, reason)
	case "Skipf":
		Skipf(t, "needs %d unicorns", 2)
	case "SkipPart":
		SkipPart(t, reason)
	case "SkipIfShort":
		SkipIfShort(t, reason)
	case "RequireRoot":
		RequireRoot(t)
	case "RequireTool":
		RequireTool(t, "traceflow-fast-no-such-tool", "unicorn-tools")
	default:
		t.Fatalf("unknown child %q", what)
	}
	t.Log(after)
}

type childRun struct {
	what   string
	ci     bool
	short  bool
	nobody bool // run as user nobody (from root), or as ourselves
}

// run runs the test binary at exe as a child and returns the verdict go
// test printed for it (PASS, SKIP or FAIL) and its output.
func (c childRun) run(t *testing.T, exe string) (verdict, out string) {
	t.Helper()
	args := []string{"-test.run=^TestRule$", "-test.v"}
	if c.short {
		args = append(args, "-test.short")
	}
	cmd := exec.Command(exe, args...)
	cmd.Dir = filepath.Dir(exe)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "CI=") || strings.HasPrefix(kv, ruleChildEnv+"=")
	})
	cmd.Env = append(cmd.Env, ruleChildEnv+"="+c.what)
	if c.ci {
		cmd.Env = append(cmd.Env, "CI=true")
	}
	if c.nobody {
		asNobody(t, cmd)
	}
	b, err := cmd.CombinedOutput()
	out = string(b)
	for _, v := range []string{"PASS", "SKIP", "FAIL"} {
		if strings.Contains(out, "--- "+v+": TestRule ") {
			verdict = v
		}
	}
	if exit := err != nil; exit != (verdict == "FAIL") || verdict == "" {
		t.Fatalf("child %+v: verdict %q, error %v; output:\n%s", c, verdict, err, out)
	}
	return verdict, out
}

// TestRule runs a child test binary that calls each function of the rule,
// with and without CI=true, and checks what go test reports: a skip
// naming the reason, or under CI=true a failure with it; never the code
// after a skip; the line of the caller, not of this package.
func TestRule(t *testing.T) {
	if what := os.Getenv(ruleChildEnv); what != "" {
		ruleChild(t, what)
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unicorns := "needs 2 unicorns"
	tool := "needs traceflow-fast-no-such-tool (Debian package unicorn-tools)"
	short := reason + ": not in -short"
	for _, tc := range []struct {
		run     childRun
		verdict string
		want    string // in the output; after must be too when verdict is PASS
	}{
		{childRun{what: "Skip"}, "SKIP", reason},
		{childRun{what: "Skip", ci: true}, "FAIL", reason + ciSuffix},
		{childRun{what: "Skipf"}, "SKIP", unicorns},
		{childRun{what: "Skipf", ci: true}, "FAIL", unicorns + ciSuffix},
		{childRun{what: "RequireTool"}, "SKIP", tool},
		{childRun{what: "RequireTool", ci: true}, "FAIL", ciSuffix},
		{childRun{what: "SkipPart"}, "PASS", "left out: " + reason},
		{childRun{what: "SkipPart", ci: true}, "FAIL", reason + ciSuffix},
		{childRun{what: "SkipIfShort", short: true}, "SKIP", short},
		{childRun{what: "SkipIfShort", short: true, ci: true}, "FAIL", short + ciSuffix},
		{childRun{what: "SkipIfShort"}, "PASS", ""},
		{childRun{what: "SkipIfShort", ci: true}, "PASS", ""},
	} {
		verdict, out := tc.run.run(t, exe)
		checkChild(t, tc.run, out, verdict, tc.verdict, tc.want)
	}
	t.Run("RequireRoot", func(t *testing.T) { testRequireRoot(t, exe) })
}

func checkChild(t *testing.T, c childRun, out, verdict, wantVerdict, want string) {
	t.Helper()
	if verdict != wantVerdict || !strings.Contains(out, want) {
		t.Errorf("child %+v: %s, want %s with %q; output:\n%s", c, verdict, wantVerdict, want, out)
	}
	if went := strings.Contains(out, after); went != (verdict == "PASS") {
		t.Errorf("child %+v: %s, but the code after the call ran: %v; output:\n%s", c, verdict, went, out)
	}
	if want != "" && !strings.Contains(out, "testenv_test.go:") || strings.Contains(out, "testenv.go:") {
		t.Errorf("child %+v: the reason is not logged at the caller's line; output:\n%s", c, out)
	}
}

// testRequireRoot runs the RequireRoot child as an unprivileged user (as
// user nobody when root), and as root if it is.
func testRequireRoot(t *testing.T, exe string) {
	const why = "needs root (euid 0)"
	root := os.Geteuid() == 0
	if root {
		verdict, out := childRun{what: "RequireRoot", ci: true}.run(t, exe)
		checkChild(t, childRun{what: "RequireRoot"}, out, verdict, "PASS", "")
		exe = PublicCopy(t, exe)
	}
	for _, ci := range []bool{false, true} {
		c := childRun{what: "RequireRoot", ci: ci, nobody: root}
		verdict, out := c.run(t, exe)
		want, wantVerdict := why, "SKIP"
		if ci {
			want, wantVerdict = why+ciSuffix, "FAIL"
		}
		checkChild(t, c, out, verdict, wantVerdict, want)
	}
}
