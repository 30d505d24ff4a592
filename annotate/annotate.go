// Package annotate adds to the hops of finished traces what the probes do
// not say: the origin AS of every address and the IXP peering LAN it is on,
// from offline tables (package analysis/asn), and its reverse DNS name.
package annotate

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/analysis/asn"
)

// Settings of the Resolver that NewResolver returns.
const (
	RDNSTimeout = 2 * time.Second // per lookup
	RDNSWorkers = 16              // lookups in flight at once
)

// Annotator adds AS numbers, IXP names and host names to the hops of
// finished traces. Each of its parts is optional.
type Annotator struct {
	ASN  *asn.DB   // origin AS of every hop
	IXP  *asn.IXPs // IXP peering LANs
	RDNS *Resolver // reverse DNS names
}

// NewResolver returns a Resolver of reverse DNS names that asks server
// (ADDR or ADDR:PORT; "" is the system's resolver), RDNSWorkers lookups at
// once, RDNSTimeout each.
func NewResolver(server string) (*Resolver, error) {
	r := net.DefaultResolver
	if server != "" {
		var err error
		if r, err = DNSServer(server); err != nil {
			return nil, err
		}
	}
	return newResolver(r.LookupAddr, RDNSTimeout, RDNSWorkers), nil
}

// DNSServer returns a resolver that asks only server (ADDR or ADDR:PORT).
func DNSServer(server string) (*net.Resolver, error) {
	ap, err := netip.ParseAddrPort(server)
	if err != nil {
		a, aerr := netip.ParseAddr(server)
		if aerr != nil {
			return nil, fmt.Errorf("%q: want ADDR or ADDR:PORT", server)
		}
		ap = netip.AddrPortFrom(a, 53)
	}
	addr := ap.String()
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}, nil
}

// Then returns a function that annotates a trace, then hands it to next:
// a result sink, say. A nil Annotator hands it on as it is.
func (a *Annotator) Then(ctx context.Context, next func(*analysis.Trace) error) func(*analysis.Trace) error {
	if a == nil {
		return next
	}
	return func(t *analysis.Trace) error {
		a.Apply(ctx, []*analysis.Trace{t})
		return next(t)
	}
}

// Apply annotates the hops of traces. Failed reverse lookups leave the
// host name empty. A nil Annotator does nothing.
func (a *Annotator) Apply(ctx context.Context, traces []*analysis.Trace) {
	if a == nil {
		return
	}
	var names map[netip.Addr]string
	if a.RDNS != nil {
		var addrs []netip.Addr
		for _, t := range traces {
			for _, f := range t.Flows {
				for _, h := range f.Hops {
					if !h.Silent() {
						addrs = append(addrs, h.Addr)
					}
				}
			}
		}
		names = a.RDNS.LookupAll(ctx, addrs)
	}
	for _, t := range traces {
		t.HasASN = a.ASN != nil
		for i := range t.Flows {
			for j := range t.Flows[i].Hops {
				h := &t.Flows[i].Hops[j]
				if h.Silent() {
					continue
				}
				h.ASN = a.ASN.Origin(h.Addr)
				h.IXP, _ = a.IXP.Lookup(h.Addr)
				h.Hostname = names[h.Addr]
			}
		}
	}
}

// Resolver looks up reverse DNS names concurrently, each with a timeout,
// and caches the answers (failures too: a name that did not resolve is not
// asked again).
type Resolver struct {
	lookup  func(ctx context.Context, addr string) ([]string, error)
	timeout time.Duration
	workers int

	mu    sync.Mutex
	cache map[netip.Addr]string
}

// newResolver returns a resolver that calls lookup (such as
// net.Resolver.LookupAddr) at most workers at a time, timeout each.
func newResolver(lookup func(ctx context.Context, addr string) ([]string, error), timeout time.Duration, workers int) *Resolver {
	return &Resolver{lookup: lookup, timeout: timeout, workers: max(workers, 1), cache: map[netip.Addr]string{}}
}

// LookupAll returns the names of addrs ("" when none), asking for each
// distinct address not in the cache once.
func (r *Resolver) LookupAll(ctx context.Context, addrs []netip.Addr) map[netip.Addr]string {
	out := make(map[netip.Addr]string, len(addrs))
	var todo []netip.Addr
	r.mu.Lock()
	for _, a := range addrs {
		if _, ok := out[a]; ok {
			continue
		}
		name, ok := r.cache[a]
		out[a] = name
		if !ok {
			todo = append(todo, a)
		}
	}
	r.mu.Unlock()

	sem := make(chan struct{}, r.workers)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, a := range todo {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			name := r.name(ctx, a)
			mu.Lock()
			out[a] = name
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// name asks for the name of a once and caches the answer.
func (r *Resolver) name(ctx context.Context, a netip.Addr) string {
	r.mu.Lock()
	name, ok := r.cache[a]
	r.mu.Unlock()
	if ok {
		return name
	}
	lctx, cancel := context.WithTimeout(ctx, r.timeout)
	names, err := r.lookup(lctx, a.String())
	cancel()
	if err == nil && len(names) > 0 {
		name = strings.TrimSuffix(names[0], ".")
	}
	// An interrupted lookup is not an answer: do not cache it.
	if ctx.Err() == nil {
		r.mu.Lock()
		r.cache[a] = name
		r.mu.Unlock()
	}
	return name
}
