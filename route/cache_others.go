//go:build !linux

package route

import (
	"context"
	"fmt"
	"net/netip"
)

// Cache answers route lookups for many destinations; it is not implemented
// on this system.
type Cache struct{}

// NewCache is not implemented on this system: it returns an error that
// matches errors.Is(err, errors.ErrUnsupported).
func NewCache(ctx context.Context, opts Options) (*Cache, error) {
	return nil, fmt.Errorf("route cache: %w", errUnsupported)
}

// Lookup is not implemented on this system.
func (c *Cache) Lookup(ctx context.Context, dst netip.Addr) (*Route, error) {
	return nil, fmt.Errorf("route to %s: %w", dst, errUnsupported)
}

// Close does nothing on this system.
func (c *Cache) Close() error { return nil }
