//go:build !linux

package probe

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
)

// RouteCache answers route lookups for many destinations. See the Linux
// implementation; on other systems it is not implemented.
type RouteCache struct{}

// NewRouteCache is not implemented on this system.
func NewRouteCache(ctx context.Context, opts RouteOptions) (*RouteCache, error) {
	return nil, fmt.Errorf("route cache: not implemented on %s", runtime.GOOS)
}

// Lookup is not implemented on this system.
func (c *RouteCache) Lookup(ctx context.Context, dst netip.Addr) (*Route, error) {
	return nil, fmt.Errorf("route to %s: not implemented on %s", dst, runtime.GOOS)
}

// Close does nothing on this system.
func (c *RouteCache) Close() error { return nil }
