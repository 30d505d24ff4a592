package tracer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"sync"

	"github.com/traceflow-fast/traceflow-fast/bpf"
	"github.com/traceflow-fast/traceflow-fast/capture"
	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/route"
)

// hostNetwork is the host's Network: routes from the kernel (cached for
// bulk runs), probes sent by a pool of AF_PACKET sockets, replies received
// by an AF_PACKET socket whose eBPF filter (or, without CAP_BPF, its classic
// BPF equivalent) passes only the replies to the run's probes.
type hostNetwork struct {
	log    *slog.Logger
	routes *route.Cache
	pool   *probe.SendPool

	mu    sync.Mutex
	links map[*route.Route]int // routes are interned by the cache
}

// HostNetwork opens the host's network for runs configured by cfg (its
// Interface and Source): the send sockets, which need CAP_NET_RAW, and
// the route cache. Open uses it when Config.Network is nil.
func HostNetwork(ctx context.Context, cfg Config) (Network, error) {
	routes, err := route.NewCache(ctx, route.Options{Interface: cfg.Interface, Source: cfg.Source})
	if err != nil {
		return nil, err
	}
	// Sending goroutines, one per CPU, each with a socket that sends to
	// any route's next hop.
	pool, err := probe.NewSendPool(runtime.GOMAXPROCS(0))
	if err != nil {
		routes.Close()
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("opening the AF_PACKET send socket needs CAP_NET_RAW: %w", err)
		}
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = discard
	}
	return &hostNetwork{log: log, routes: routes, pool: pool, links: map[*route.Route]int{}}, nil
}

func (h *hostNetwork) Route(ctx context.Context, dst netip.Addr) (Route, error) {
	rt, err := h.routes.Lookup(ctx, dst)
	if err != nil {
		return Route{}, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	link, ok := h.links[rt]
	if !ok {
		if link, err = h.pool.AddRoute(rt); err != nil {
			return Route{}, err
		}
		h.links[rt] = link
		h.log.Debug("route", "iface", rt.IfName, "src", rt.Src, "nexthop", rt.NextHop, "lladdr", rt.HWAddr)
	}
	return Route{Src: rt.Src, Link: link, Iface: rt.IfName}, nil
}

func (h *hostNetwork) ReserveTag() (uint16, func(), error) { return probe.ReserveTag() }

func (h *hostNetwork) Listen(spec *probe.Spec) (Receiver, error) {
	// eBPF when it loads; else (no CAP_BPF, unprivileged eBPF disabled,
	// an old kernel) the equivalent classic BPF filter, which needs no
	// privilege.
	filter, kind, err := bpf.Load(bpf.Match{
		Proto:      spec.Proto,
		Src:        spec.Src,
		SrcPortMin: spec.BaseSrcPort + 1,
		SrcPortMax: spec.BaseSrcPort + uint16(spec.Paths),
		DstPort:    spec.DstPort,
		Tag:        spec.Tag,
	})
	if err != nil {
		return nil, err
	}
	if c, ok := filter.(*bpf.Classic); ok && kind == bpf.KindClassic {
		h.log.Info("using the classic BPF receive filter", "reason", c.FallbackReason())
	}
	conn, err := capture.Listen(capture.Config{Attach: filter.Attach, IPv6: spec.Src.Is6()})
	if err != nil {
		filter.Close()
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("opening the AF_PACKET receive socket needs CAP_NET_RAW: %w", err)
		}
		return nil, err
	}
	return &hostReceiver{Conn: conn, filter: filter}, nil
}

func (h *hostNetwork) Send(link int, pkts [][]byte) error { return h.pool.Send(link, pkts) }

func (h *hostNetwork) Close() error {
	err := h.pool.Close()
	h.routes.Close()
	return err
}

// hostReceiver is the receive socket with its filter.
type hostReceiver struct {
	*capture.Conn
	filter interface{ Close() error }
}

func (r *hostReceiver) Close() error {
	err := r.Conn.Close()
	r.filter.Close()
	return err
}
