//go:build !linux

package probe

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
)

// Route says where the probes to one destination leave this host. See the
// Linux implementation; on other systems LookupRoute is not implemented.
type Route struct {
	Ifindex int
	IfName  string
	Src     netip.Addr
	NextHop netip.Addr
	HWAddr  net.HardwareAddr
	MTU     int
}

// RouteOptions override the kernel's choices (--interface, --source).
type RouteOptions struct {
	Interface string
	Source    netip.Addr
}

// LookupRoute is not implemented on this system.
func LookupRoute(ctx context.Context, dst netip.Addr, opt RouteOptions) (*Route, error) {
	return nil, fmt.Errorf("route lookup: not implemented on %s", runtime.GOOS)
}
