// Package testenv holds the rules the project's tests share about their
// environment: a test that needs what this machine lacks (root, a tool, a
// kernel feature) skips, naming what it needs, except in CI (CI=true),
// where a skip would hide a part of the suite that did not run: there it
// fails with the same reason.
package testenv

import (
	"os"
	"testing"
)

// InCI says whether the tests run in CI (CI=true), where nothing may skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Skip skips t, saying why; under CI=true it fails t instead.
func Skip(t testing.TB, why string) {
	t.Helper()
	if InCI() {
		t.Fatal(why + " (CI=true: failing instead of skipping)")
	}
	t.Skip(why)
}

// Skipf is Skip with a format.
func Skipf(t testing.TB, format string, args ...any) {
	t.Helper()
	Skip(t, sprintf(format, args...))
}

// RequireRoot skips t (fails it under CI=true) unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root (euid 0)")
	}
}
