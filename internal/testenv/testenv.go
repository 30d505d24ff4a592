// Package testenv holds the rules the project's tests share about their
// environment: a test that needs what this machine lacks (root, a tool, a
// kernel feature) skips, naming what it needs, except in CI (CI=true),
// where a skip would hide a part of the suite that did not run: there it
// fails with the same reason.
//
// Every skip of the module's tests goes through this package (a test of
// internal/repocheck holds them to it): Skip and Skipf for a whole test,
// SkipPart for a test that leaves out some of its checks and runs the rest,
// SkipIfShort for the slow tests that -short leaves out.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI says whether the tests run in CI (CI=true), where nothing may skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// ciSuffix ends the message of a skip turned into a failure.
const ciSuffix = " (CI=true: failing instead of skipping)"

// Skip skips t, saying why; under CI=true it fails t instead.
func Skip(t testing.TB, why string) {
	t.Helper()
	if InCI() {
		t.Fatal(why + ciSuffix)
	}
	t.Skip(why)
}

// Skipf is Skip with a format.
func Skipf(t testing.TB, format string, args ...any) {
	t.Helper()
	Skip(t, sprintf(format, args...))
}

// SkipPart says in t's log that t leaves out a part of its checks, and
// why; the caller then runs the rest. Under CI=true it fails t instead
// (t.Fatal): a check left out in CI is a check that never runs.
func SkipPart(t testing.TB, why string) {
	t.Helper()
	if InCI() {
		t.Fatal(why + ciSuffix)
	}
	t.Log("left out: " + why)
}

// SkipIfShort skips t under -short, saying why it is left out. CI does
// not run with -short: there it fails t instead.
func SkipIfShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		Skip(t, why+": not in -short")
	}
}

// RequireRoot skips t (fails it under CI=true) unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root (euid 0)")
	}
}

// RequireTool returns the path of the program name, looked up in PATH (or
// name itself if it holds a slash); without it t skips (fails under
// CI=true), naming the Debian package that holds it.
func RequireTool(t testing.TB, name, debPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		Skipf(t, "needs %s (Debian package %s): %v", name, debPackage, err)
	}
	return path
}
