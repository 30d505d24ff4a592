//go:build !linux

package bpf

import (
	"errors"
	"fmt"
	"runtime"
)

// LoadFilter validates m and returns an error: socket filters need Linux.
func LoadFilter(m Match) (*Filter, error) {
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("bpf: load filter: %w", err)
	}
	return nil, fmt.Errorf("bpf: load filter: not implemented on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

// Attach returns an error: socket filters need Linux.
func (f *Filter) Attach(fd int) error {
	return fmt.Errorf("bpf: attach filter: not implemented on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
