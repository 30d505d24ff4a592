//go:build !linux

package lab

import (
	"fmt"
	"runtime"
)

// InNS runs fn inside the namespace of node ns; only on Linux.
func (l *Lab) InNS(ns string, fn func() error) error {
	return fmt.Errorf("lab: network namespaces not implemented on %s", runtime.GOOS)
}

// sweep does nothing: no network namespaces here.
func sweep() {}
