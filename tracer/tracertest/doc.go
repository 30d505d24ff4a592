// Package tracertest simulates multipath networks at the packet level, for
// testing programs that trace with package tracer, as net/http/httptest
// serves tests of HTTP clients. A Network implements tracer.Network: a
// whole run of the engine (probe encoding, reply matching, MDA rounds)
// goes through it as an unprivileged user, without sockets or network
// namespaces, in virtual time.
//
// # The network
//
// A Topology is made of nodes (the Source, where probes leave from,
// routers, and destination hosts) joined by directed links from the Source
// towards the destinations. Build one with NewTopology and Link, or take a
// ready-made one: Line, Diamond, Nested, Unequal, Meshed, Asymmetric,
// TwoDiamonds (the project's lab, scripts/lab.sh, and its MDA simulator),
// or ByName, which also has variants with a silent router, a per-packet
// balancer, lossy links, a rejecting router and Linux's rate limits.
//
// Each node has IPv4 and IPv6 addresses and answers from one of them, or
// from the address of the link the probe came in by (Node.InboundAddr). A
// destination host holds addresses, and prefixes it answers every address
// of (Node.Local, like Linux's `ip route add local PREFIX dev lo`), so one
// node stands for thousands of destinations. A router sends a packet
// towards the nodes that can reach its destination, or by the routes that
// Topology.Route sets (Network.SetRoute changes them while a run goes on). With several next hops it picks one by a hash of
// the flow, seeded per router so that nested balancers do not polarize:
// addresses, protocol and ports, the flow label over IPv6, the identifier
// of an ICMP echo request (as the lab's nftables rule does). A PerPacket
// router picks at random. Everything random is drawn from generators
// seeded with Options.Seed: a run that sends the same packets at the same
// times gets the same answers.
//
// # Packets
//
// Send reads each probe itself (it does not use package probe's decoder):
// IPv4 or IPv6, UDP, TCP or an ICMP echo request. The IPv4 header checksum
// must be right, or the packet is dropped as a router would. Each link
// adds its delay; each router decrements the TTL and, when it reaches 0,
// answers ICMP time exceeded (type 11 code 0; ICMPv6 3/0) quoting the
// probe as it received it: as much as fits in 576 bytes (1280 for ICMPv6)
// as Linux does, or Node.QuoteLen bytes. A router without a route answers
// net unreachable (3/0; 1/0), a Reject router administratively prohibited
// (3/13; 1/1). The destination checks the transport checksum and answers
// UDP with a port unreachable (3/3; 1/4), a TCP SYN with a SYN-ACK
// (Node.OpenTCP) or an RST, an echo request with an echo reply that echoes
// identifier, sequence number and data. Replies are built byte by byte
// with their checksums, a TTL of 64 less the routers on the way back, and
// RFC 4884 extensions with an RFC 4950 MPLS label stack where Node.MPLS is
// set. A reply arrives after twice the delays of the links crossed.
//
// Nodes drop probes (Node.Loss), lose their replies (Node.ReplyLoss), links
// lose packets either way (Link.Loss), and a node's ICMP errors pass its
// RateLimit, modelled on Linux's per-destination and global token buckets.
// Counters and Stats count what happened; Paths, PathsOf and AllPaths say
// which paths there are to find, for comparing with what a run found.
//
// # Time
//
// A Network runs on a virtual clock (Network.Clock), which a run must use.
// It starts at Options.Start and moves only when the engine waits, from
// one event to the next: the arrival of replies, or the deadline of an
// armed Timer, whichever comes first (replies first at equal times). A
// stopped timer is not an event: with nothing pending the clock stays.
// The engine waits when
//
//   - it has called a Timer's C (which tracer's contract says it does just
//     before it blocks on it) since its last call into the network: Now,
//     Send, Timer.Reset or Timer.Stop; and
//   - every reply delivered so far was handed to a ReadBatch callback that
//     has returned; and
//   - no call into the network came for Options.Quiet of real time (300µs),
//     so that a goroutine woken by a reply has time to show it is busy.
//
// When the timer the engine called C on last fires, the engine is taken to
// be busy until its next call. A run whose goroutines all wait through
// its Timers and ReadBatch thus sees time move exactly as its own waits
// ask, however slow the machine. A goroutine that calls Now while the one
// waiting on a timer still waits, or that blocks on anything else, stops
// the clock until Options.Stall (500 ms) of real time has passed without a
// call into the network, after which it moves on anyway. Replies reach a
// Receiver in the order of their arrival, with their arrival time as ts.
//
// With Options.RealTime the network runs on the system clock instead, and
// delivers each reply when its delay has passed in real time.
//
// # Filter
//
// With Options.Filter, a Receiver gets only the replies that the run's
// classic BPF filter (package bpf) keeps, run in golang.org/x/net/bpf's
// virtual machine as the kernel would run it on the receive socket.
package tracertest
