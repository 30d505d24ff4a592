//go:build !linux

package route

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
)

// errUnsupported says that routes are read from Linux only.
var errUnsupported = fmt.Errorf("not implemented on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Lookup is not implemented on this system: it returns an error that
// matches errors.Is(err, errors.ErrUnsupported).
func Lookup(ctx context.Context, dst netip.Addr, opt Options) (*Route, error) {
	return nil, fmt.Errorf("route lookup: %w", errUnsupported)
}
