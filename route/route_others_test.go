//go:build !linux

package route_test

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"strings"
	"testing"

	"github.com/traceflow-fast/traceflow-fast/route"
)

// TestUnsupported checks that routes are refused on this system with an
// error that says so and matches errors.ErrUnsupported.
func TestUnsupported(t *testing.T) {
	ctx := context.Background()
	_, lerr := route.Lookup(ctx, netip.MustParseAddr("192.0.2.1"), route.Options{})
	_, cerr := route.NewCache(ctx, route.Options{})
	for _, err := range []error{lerr, cerr} {
		if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "not implemented on "+runtime.GOOS) {
			t.Errorf("got %v; want an error that matches errors.ErrUnsupported and names %s", err, runtime.GOOS)
		}
	}
}
