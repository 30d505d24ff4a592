//go:build !linux

package tracer

import "context"

// HostNetwork opens the host's network; it is only implemented on Linux.
func HostNetwork(context.Context, Config) (Network, error) { return nil, ErrNeedsLinux }
