package tracer

import (
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"time"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// Config says how a run probes. The zero value of a field means its
// default; Retries and Rate, whose zero is a meaningful setting, take a
// negative value for it (NoRetries, Unlimited).
type Config struct {
	// Protocol of the probes (default UDP). IPv6 runs send UDP only.
	Protocol probe.Proto
	// Paths is the number of path IDs (flows) every destination gets; 0
	// (the default) is adaptive: path IDs are added until the MDA
	// stopping rule holds at Confidence, up to MaxPaths.
	Paths int
	// MaxPaths bounds the path IDs of an adaptive run (default 256,
	// at most 4096).
	MaxPaths int
	// Confidence of the adaptive search (default 0.95; 0.5..0.9999).
	Confidence float64
	// FirstTTL and MaxTTL bound the TTLs probed (defaults 1 and 30;
	// MaxTTL at most probe.MaxTTL). An adaptive run starts at TTL 1.
	FirstTTL, MaxTTL int
	// SrcPort is the base source port (ICMP: identifier): path ID p uses
	// SrcPort+p (default 33452).
	SrcPort int
	// DstPort is the destination port of every probe (default 33452,
	// 80 for TCP; none for ICMP).
	DstPort int
	// Wait is how long a probe waits for its reply (default 1 s, below
	// probe.ClockWrap).
	Wait time.Duration
	// Retries is how often an unanswered probe is sent again (default 1;
	// NoRetries for none; at most 10).
	Retries int
	// GapLimit is how many TTLs a path probes beyond the last that
	// answered before it gives up (default 5).
	GapLimit int
	// TOS is the IP TOS byte (IPv6: traffic class) of every probe.
	TOS uint8
	// Rate caps the probes sent per second, retries included (default
	// 10,000; Unlimited sends as fast as the network takes them).
	Rate float64
	// Window is the most destinations traced at once (default: what
	// fits in about 100 MiB, and what Rate serves in two Waits).
	Window int
	// NoStopSet makes every destination of an adaptive run prove its
	// paths with its own probes. By default a vertex that one
	// destination's search settled is taken by the others whose flows
	// show the same successors (see mda.StopSet), and searches wait for
	// each other rather than test one vertex at once; the traces list
	// such vertices (analysis.Trace.Reused).
	NoStopSet bool
	// Interface and Source override the routing table's choice of the
	// interface and source address the probes leave by.
	Interface string
	Source    netip.Addr
	// Logger receives the run's logs (default: none).
	Logger *slog.Logger
	// Capture, when set, is given every probe sent and every packet
	// received (a pcap writer, say).
	Capture PacketLog
	// Network is what the run probes through (default: the host's
	// AF_PACKET sockets, which need privileges; see Network).
	Network Network
	// Clock is the run's time (default: the system's; a simulated
	// network may bring its own).
	Clock Clock
	// Observer, when set, is told of every probe sent and every answer
	// as they happen (a live view; see Observer).
	Observer Observer
}

// PacketLog records the packets of a run. Its errors stick: the run
// ignores them, and whoever closes the log reports them.
type PacketLog interface {
	WritePacket(ts time.Time, pkt []byte) error
	WritePackets(ts time.Time, pkts [][]byte) error
}

// Settings of Config with a meaningful zero.
const (
	NoRetries = -1
	Unlimited = -1
)

// Defaults of Config.
const (
	DefaultMaxPaths   = 256
	DefaultConfidence = 0.95
	DefaultMaxTTL     = 30
	DefaultSrcPort    = 33452
	DefaultDstPort    = 33452
	DefaultWait       = time.Second
	DefaultRetries    = 1
	DefaultGapLimit   = 5
	// DefaultRate is gentle enough for real networks, where routers
	// rate-limit their ICMP answers, and the rate zmap uses by default.
	DefaultRate = 10000
	// MaxPathIDs bounds Paths and MaxPaths.
	MaxPathIDs = 4096
)

// A ConfigError names the Config field that is not valid, and why.
type ConfigError struct {
	Field  string // the Config field, e.g. "MaxTTL"
	Value  any
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("tracer: Config.%s %v: %s", e.Field, e.Value, e.Reason)
}

// Adaptive says whether the run adds path IDs as the MDA search needs.
func (c *Config) Adaptive() bool { return c.Paths == 0 }

// WithDefaults returns c with the defaults in place of zero values, and
// the values with a meaningful zero made explicit (Retries and Rate 0).
func (c Config) WithDefaults() Config {
	if c.Paths == 0 && c.MaxPaths == 0 {
		c.MaxPaths = DefaultMaxPaths
	}
	if c.Paths > 0 {
		c.MaxPaths = c.Paths
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.FirstTTL, 1)
	def(&c.MaxTTL, DefaultMaxTTL)
	def(&c.SrcPort, DefaultSrcPort)
	def(&c.GapLimit, DefaultGapLimit)
	def(&c.Retries, DefaultRetries)
	if c.DstPort == 0 {
		switch c.Protocol {
		case probe.ProtoUDP:
			c.DstPort = DefaultDstPort
		case probe.ProtoTCP:
			c.DstPort = 80
		}
	}
	if c.Confidence == 0 {
		c.Confidence = DefaultConfidence
	}
	if c.Wait == 0 {
		c.Wait = DefaultWait
	}
	switch {
	case c.Rate == 0:
		c.Rate = DefaultRate
	case c.Rate < 0:
		c.Rate = 0 // unlimited, as the scanner takes it
	}
	if c.Retries < 0 {
		c.Retries = 0
	}
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
	return c
}

// Validate reports the first field of c (defaults applied) that is not
// valid, as a *ConfigError.
func (c Config) Validate() error {
	d := c.WithDefaults()
	bad := func(field string, v any, reason string) error {
		return &ConfigError{Field: field, Value: v, Reason: reason}
	}
	switch {
	case d.Protocol > probe.ProtoICMP:
		return bad("Protocol", d.Protocol, "must be UDP, TCP or ICMP")
	case c.Paths < 0 || c.Paths > MaxPathIDs:
		return bad("Paths", c.Paths, fmt.Sprintf("must be 1..%d, or 0 (adaptive)", MaxPathIDs))
	case d.MaxPaths < 1 || d.MaxPaths > MaxPathIDs:
		return bad("MaxPaths", d.MaxPaths, fmt.Sprintf("must be 1..%d", MaxPathIDs))
	case math.IsNaN(d.Confidence) || d.Confidence < 0.5 || d.Confidence > 0.9999:
		return bad("Confidence", d.Confidence, "must be 0.5..0.9999")
	case d.MaxTTL < 1 || d.MaxTTL > probe.MaxTTL:
		return bad("MaxTTL", d.MaxTTL, fmt.Sprintf("must be 1..%d (the IP.ID carries 6 bits of TTL)", probe.MaxTTL))
	case d.FirstTTL < 1 || d.FirstTTL > d.MaxTTL:
		return bad("FirstTTL", d.FirstTTL, fmt.Sprintf("must be 1..MaxTTL (%d)", d.MaxTTL))
	case c.Adaptive() && d.FirstTTL > 1:
		return bad("FirstTTL", d.FirstTTL, "needs a fixed number of Paths: the adaptive search starts at TTL 1")
	case d.SrcPort < 0 || d.SrcPort+d.MaxPaths > 65535:
		return bad("SrcPort", d.SrcPort, fmt.Sprintf("SrcPort + path IDs (%d) must stay within 0..65535", d.MaxPaths))
	}
	return d.validateTiming(c)
}

// validateTiming goes on with Validate: ports, timing and pacing.
func (d Config) validateTiming(c Config) error {
	bad := func(field string, v any, reason string) error {
		return &ConfigError{Field: field, Value: v, Reason: reason}
	}
	switch {
	case d.Protocol == probe.ProtoICMP && c.DstPort != 0:
		return bad("DstPort", c.DstPort, "ICMP echo requests have no port")
	case d.Protocol != probe.ProtoICMP && (d.DstPort < 1 || d.DstPort > 65535):
		return bad("DstPort", d.DstPort, "must be 1..65535")
	case d.Wait < 0 || d.Wait >= probe.ClockWrap:
		return bad("Wait", d.Wait, fmt.Sprintf("must be more than 0 and below %.1f s, the wrap of the send clock carried in the probes", probe.ClockWrap.Seconds()))
	case c.Retries < NoRetries || d.Retries > 10:
		return bad("Retries", c.Retries, "must be 0..10 (NoRetries for none)")
	case d.GapLimit < 1 || d.GapLimit > probe.MaxTTL:
		return bad("GapLimit", d.GapLimit, fmt.Sprintf("must be 1..%d", probe.MaxTTL))
	case math.IsNaN(c.Rate) || c.Rate > 1e8 || c.Rate < 0 && c.Rate != Unlimited:
		return bad("Rate", c.Rate, "must be a number of probes per second up to 100000000, or Unlimited")
	case d.Window < 0 || d.Window > 1<<20:
		return bad("Window", d.Window, fmt.Sprintf("must be 1..%d (0: automatic)", 1<<20))
	case d.Source.IsValid() && (d.Source.Is4In6() || d.Source.Zone() != ""):
		return bad("Source", d.Source, "must be an IPv4 or IPv6 address without a zone, not IPv4-mapped")
	}
	return nil
}

// window sizes the destinations in progress at once, for a run of total
// destinations (-1: unknown). By default it is a memory budget: a
// destination costs about a byte of scheduler state and a 40-byte result
// cell per (path ID, TTL), plus a few hundred bytes; an adaptive run, about
// as much again for the planner's view, for the 20 to 60 path IDs a
// diamond takes. With a rate, it is no more than the rate serves in about
// two Waits, so each destination finishes soon after it starts and results
// stream out steadily.
func (c *Config) window(total int64) int {
	w := c.Window
	if w <= 0 {
		const budget = 96 << 20
		paths := c.MaxPaths
		if c.Adaptive() {
			paths = 32
		}
		per := 512 + paths*c.MaxTTL*48
		w = min(max(budget/per, 16), 1<<16)
		if c.Rate > 0 {
			perDst := float64(c.MaxPaths) * 10
			if c.Adaptive() {
				perDst = 60
			}
			w = min(w, max(64, int(c.Rate*2*c.Wait.Seconds()/perDst)))
		}
	}
	if total >= 0 {
		w = int(min(int64(w), max(total, 1)))
	}
	return w
}
