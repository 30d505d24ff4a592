//go:build !unix

package testenv

import (
	"os/exec"
	"runtime"
	"testing"
)

// asNobody fails t: there is no user nobody to switch to here.
func asNobody(t *testing.T, cmd *exec.Cmd) {
	t.Fatalf("cannot run a command as another user on %s", runtime.GOOS)
}
