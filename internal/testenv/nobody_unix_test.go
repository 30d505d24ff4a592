//go:build unix

package testenv

import (
	"os/exec"
	"syscall"
	"testing"
)

// asNobody makes cmd run as user nobody (65534).
func asNobody(t *testing.T, cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
}
