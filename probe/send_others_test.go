//go:build !linux

package probe_test

import (
	"errors"
	"net/netip"
	"runtime"
	"strings"
	"testing"

	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/route"
)

// TestUnsupported checks that sending and the run tag are refused on this
// system with an error that says so and matches errors.ErrUnsupported.
func TestUnsupported(t *testing.T) {
	rt := &route.Route{Ifindex: 1, IfName: "lo0", Src: netip.MustParseAddr("127.0.0.1"), NextHop: netip.MustParseAddr("127.0.0.1")}
	_, serr := probe.NewSender(rt)
	_, perr := probe.NewSendPool(1)
	_, _, terr := probe.ReserveTag()
	for _, err := range []error{serr, perr, terr} {
		if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "not implemented on "+runtime.GOOS) {
			t.Errorf("got %v; want an error that matches errors.ErrUnsupported and names %s", err, runtime.GOOS)
		}
	}
}
