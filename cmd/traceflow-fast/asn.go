package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/analysis/asn"
)

// Reverse DNS settings of --rdns.
const (
	rdnsTimeout = 2 * time.Second // per lookup
	rdnsWorkers = 16              // lookups in flight at once
)

// annotator adds AS numbers, IXP names and host names to the hops of
// finished traces.
type annotator struct {
	asn  *asn.DB
	ixp  *asn.IXPs
	rdns *rdnsResolver
}

// parseAnnotations loads the AS and IXP tables up front, so that a bad file
// fails before any probe is sent.
func parseAnnotations(c *cli.Context, o *options) error {
	var a annotator
	format, err := asn.ParseFormat(c.String("asn-db-format"))
	if err != nil {
		return fmt.Errorf("--asn-db-format %q: must be one of %v", c.String("asn-db-format"), asn.Formats())
	}
	if path := c.String("asn-db"); path != "" {
		if a.asn, err = asn.Load(path, format); err != nil {
			return fmt.Errorf("--asn-db %w", err)
		}
	} else if c.IsSet("asn-db-format") {
		return fmt.Errorf("--asn-db-format needs --asn-db")
	}
	if path := c.String("ixp-db"); path != "" {
		if a.ixp, err = asn.LoadIXPs(path); err != nil {
			return fmt.Errorf("--ixp-db %w", err)
		}
	}
	server := c.String("rdns-server")
	switch {
	case c.Bool("rdns"):
		r := net.DefaultResolver
		if server != "" {
			if r, err = dnsServer(server); err != nil {
				return fmt.Errorf("--rdns-server %w", err)
			}
		}
		a.rdns = newRDNS(r.LookupAddr, rdnsTimeout, rdnsWorkers)
	case server != "":
		return fmt.Errorf("--rdns-server needs --rdns")
	}
	if a.asn != nil || a.ixp != nil || a.rdns != nil {
		o.annotate = &a
	}
	return nil
}

// dnsServer returns a resolver that asks only server (ADDR or ADDR:PORT).
func dnsServer(server string) (*net.Resolver, error) {
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

// apply annotates the hops of traces. Failed reverse lookups leave the
// host name empty.
func (a *annotator) apply(ctx context.Context, traces []*analysis.Trace) {
	if a == nil {
		return
	}
	var names map[netip.Addr]string
	if a.rdns != nil {
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
		names = a.rdns.lookupAll(ctx, addrs)
	}
	for _, t := range traces {
		t.HasASN = a.asn != nil
		for i := range t.Flows {
			for j := range t.Flows[i].Hops {
				h := &t.Flows[i].Hops[j]
				if h.Silent() {
					continue
				}
				h.ASN = a.asn.Origin(h.Addr)
				h.IXP, _ = a.ixp.Lookup(h.Addr)
				h.Hostname = names[h.Addr]
			}
		}
	}
}

// rdnsResolver looks up reverse DNS names concurrently, each with a timeout,
// and caches the answers (failures too: a name that did not resolve is not
// asked again).
type rdnsResolver struct {
	lookup  func(ctx context.Context, addr string) ([]string, error)
	timeout time.Duration
	workers int

	mu    sync.Mutex
	cache map[netip.Addr]string
}

// newRDNS returns a resolver that calls lookup (such as
// net.Resolver.LookupAddr) at most workers at a time, timeout each.
func newRDNS(lookup func(ctx context.Context, addr string) ([]string, error), timeout time.Duration, workers int) *rdnsResolver {
	return &rdnsResolver{lookup: lookup, timeout: timeout, workers: max(workers, 1), cache: map[netip.Addr]string{}}
}

// lookupAll returns the names of addrs ("" when none), asking for each
// distinct address not in the cache once.
func (r *rdnsResolver) lookupAll(ctx context.Context, addrs []netip.Addr) map[netip.Addr]string {
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
func (r *rdnsResolver) name(ctx context.Context, a netip.Addr) string {
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
