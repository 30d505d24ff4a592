// Package tracer is traceflow-fast's engine: it traces the paths to many
// destinations at once, keeping the 5-tuple of each path ID (flow) fixed
// while the TTL varies, so that per-flow load balancers keep each path ID
// on one path, and hands each destination's result to a sink as soon as it
// is finished.
//
// # A run
//
// Open prepares a run from a Config and the destinations (Targets): it
// finds the route of the first destinations (every probe of a run leaves
// from one source address, which the receive side matches), reserves a
// run tag and opens the receive side with its filter. Those are the steps
// that need privileges; a program may give them up once Open returns. Run
// then traces every destination and calls the Sink with each
// analysis.Trace, in the order they finish, until all are done or its
// context is cancelled (the destinations in progress are then handed over
// as partial results). Trace does both for a program that keeps its
// privileges. Stats gives the live counters while Run runs.
//
// With Config.Paths 0 the run is adaptive: path ID 1 finds the
// destination's distance, then the MDA planner (package analysis/mda) adds
// path IDs and picks the TTLs to probe until the stopping rule holds at
// every vertex, at Config.Confidence. With Paths N, every destination gets
// path IDs 1..N, probed TTL by TTL.
//
// Destinations are admitted as the sender needs work, up to Config.Window
// at once, and their probes interleaved so that consecutive probes go to
// different destinations, at Config.Rate probes per second at most.
//
// # I/O
//
// A run sends and receives through a Network (Config.Network) and tells
// the time with a Clock (Config.Clock). The default is the host's: routes
// from the kernel, probes sent through AF_PACKET sockets, replies received
// through an AF_PACKET socket whose eBPF filter (or, without CAP_BPF, its
// classic BPF equivalent) passes only the ICMP replies that quote a probe
// of the run; it needs CAP_NET_RAW, and Linux. Package tracertest
// simulates multipath networks at the packet level in virtual time, so
// that whole runs are tested without privileges.
//
// # Goroutines
//
// Run has four goroutines under one errgroup: the scan (scheduling,
// sending, recording answers, planning), receive (decoding and matching
// replies, without allocating per packet), prefetch (route lookups ahead
// of the scan) and write (the sink). Run returns when all have ended.
package tracer
