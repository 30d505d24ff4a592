package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/targets"
	"github.com/traceflow-fast/traceflow-fast/tracer"
)

// Request is a measurement, as a client submits it: the destinations and
// the options of the command line, by their flag names. A zero field is
// the command's default, except Rate: 0 is the agent's own limit.
type Request struct {
	ID         string   `json:"id"`
	Targets    []string `json:"targets"` // addresses, host names, prefixes
	IPv6       bool     `json:"ipv6,omitempty"`
	Protocol   string   `json:"protocol,omitempty"` // udp, tcp or icmp
	Paths      int      `json:"paths,omitempty"`    // 0: auto
	MaxPaths   int      `json:"max_paths,omitempty"`
	Confidence float64  `json:"confidence,omitempty"` // percent
	FirstTTL   int      `json:"first_ttl,omitempty"`
	MaxTTL     int      `json:"ttl,omitempty"`
	SrcPort    int      `json:"srcport,omitempty"`
	DstPort    int      `json:"dstport,omitempty"`
	Wait       float64  `json:"wait,omitempty"` // seconds
	Retries    *int     `json:"retries,omitempty"`
	GapLimit   int      `json:"gap_limit,omitempty"`
	NoStopSet  bool     `json:"no_stop_set,omitempty"`
	TOS        int      `json:"tos,omitempty"`
	Rate       float64  `json:"rate,omitempty"` // probes per second
	Seed       uint64   `json:"seed,omitempty"` // of the random order (0: the agent picks one)
}

// MaxRequestTargets bounds the entries of Request.Targets (each may be a
// prefix; Limits.MaxTargets bounds the addresses).
const MaxRequestTargets = 1 << 16

// Limits are an agent's own bounds, enforced whatever a request says.
type Limits struct {
	// MaxRate caps the probes per second (default tracer.DefaultRate); a
	// request asking for more, or for no limit, gets MaxRate.
	MaxRate float64
	// MaxTargets is the most addresses a measurement may hold (default
	// targets.DefaultMaxPrefix); a request with more is refused.
	MaxTargets uint64
	// Exclude lists prefixes never probed: their addresses are removed
	// from every request, and a request left with none is refused.
	Exclude []netip.Prefix
	// Protocols the agent probes with (default udp, tcp and icmp).
	Protocols []probe.Proto
	// Resolve resolves host names (default: the system resolver).
	Resolve func(ctx context.Context, host string) (netip.Addr, error)
}

func (l Limits) withDefaults() Limits {
	if l.MaxRate <= 0 {
		l.MaxRate = tracer.DefaultRate
	}
	if l.MaxTargets == 0 {
		l.MaxTargets = targets.DefaultMaxPrefix
	}
	if l.Protocols == nil {
		l.Protocols = []probe.Proto{probe.ProtoUDP, probe.ProtoTCP, probe.ProtoICMP}
	}
	return l
}

// plan is a request checked against the limits: what to run.
type plan struct {
	cfg  tracer.Config
	set  *targets.Set
	seed uint64
}

// decodeRequest reads a request, refusing unknown fields as the command
// refuses unknown flags.
func decodeRequest(b []byte) (*Request, error) {
	var r Request
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil {
		return nil, fmt.Errorf("bad request: %w", err)
	}
	if d.More() {
		return nil, errors.New("bad request: more than one JSON value")
	}
	return &r, nil
}

// check validates r as the command line validates its flags, against l
// (defaults applied), over base (the agent's engine settings).
func (l Limits) check(ctx context.Context, r *Request, base tracer.Config) (*plan, error) {
	if err := ValidName("measurement id", r.ID); err != nil {
		return nil, err
	}
	cfg, err := l.config(r, base)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		var ce *tracer.ConfigError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("%s %v: %s", optionName(ce.Field), ce.Value, ce.Reason)
		}
		return nil, err
	}
	set, err := l.targets(ctx, r)
	if err != nil {
		return nil, err
	}
	seed := r.Seed
	for seed == 0 {
		seed = rand.Uint64() // agents tracing the same targets do so in different orders
	}
	return &plan{cfg: cfg, set: set, seed: seed}, nil
}

// config returns the engine's settings for r, within l.
func (l Limits) config(r *Request, base tracer.Config) (tracer.Config, error) {
	cfg := base
	proto := probe.ProtoUDP
	if r.Protocol != "" {
		p, err := probe.ParseProto(r.Protocol)
		if err != nil {
			return cfg, fmt.Errorf("protocol %q: must be udp, tcp or icmp", r.Protocol)
		}
		proto = p
	}
	if !slices.Contains(l.Protocols, proto) {
		return cfg, fmt.Errorf("protocol %s: this agent does not probe with it (allowed: %s)", proto, protoList(l.Protocols))
	}
	if r.IPv6 && proto != probe.ProtoUDP {
		return cfg, fmt.Errorf("protocol %s: IPv6 runs send udp probes only", proto)
	}
	if bad := math.IsNaN(r.Confidence) || r.Confidence != 0 && (r.Confidence < 50 || r.Confidence > 99.99); bad {
		return cfg, fmt.Errorf("confidence %v: must be 50..99.99 (percent)", r.Confidence)
	}
	if math.IsNaN(r.Wait) || r.Wait < 0 || r.Wait > 60 {
		return cfg, fmt.Errorf("wait %v: must be more than 0 and at most 60 seconds", r.Wait)
	}
	if r.TOS < 0 || r.TOS > 255 {
		return cfg, fmt.Errorf("tos %d: must be 0..255", r.TOS)
	}
	if math.IsNaN(r.Rate) || r.Rate < 0 {
		return cfg, fmt.Errorf("rate %v: must be a number of probes per second (0: the agent's limit)", r.Rate)
	}
	cfg.Protocol, cfg.Paths, cfg.MaxPaths = proto, r.Paths, r.MaxPaths
	cfg.Confidence = r.Confidence / 100
	cfg.FirstTTL, cfg.MaxTTL, cfg.GapLimit, cfg.NoStopSet = r.FirstTTL, r.MaxTTL, r.GapLimit, r.NoStopSet
	cfg.SrcPort, cfg.DstPort, cfg.TOS = r.SrcPort, r.DstPort, uint8(r.TOS)
	cfg.Wait = time.Duration(r.Wait * float64(time.Second))
	if r.Retries != nil {
		if cfg.Retries = *r.Retries; cfg.Retries == 0 {
			cfg.Retries = tracer.NoRetries
		} else if cfg.Retries < 0 {
			return cfg, fmt.Errorf("retries %d: must be 0..10", *r.Retries)
		}
	}
	cfg.Rate = l.MaxRate
	if r.Rate > 0 && r.Rate < l.MaxRate {
		cfg.Rate = r.Rate
	}
	return cfg, nil
}

// targets builds the destinations of r, without the excluded ones.
func (l Limits) targets(ctx context.Context, r *Request) (*targets.Set, error) {
	if len(r.Targets) > MaxRequestTargets {
		return nil, fmt.Errorf("%d targets: at most %d entries", len(r.Targets), MaxRequestTargets)
	}
	b := targets.NewBuilder(targets.Options{MaxPrefix: l.MaxTargets, Exclude: l.Exclude, IPv6: r.IPv6, Resolve: l.Resolve})
	for _, t := range r.Targets {
		if err := b.AddArg(ctx, t); err != nil {
			return nil, err
		}
	}
	set, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("targets: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if set.Len() > l.MaxTargets {
		return nil, fmt.Errorf("targets: %d addresses, more than this agent's limit of %d", set.Len(), l.MaxTargets)
	}
	return set, nil
}

// optionName is the request field of a tracer.Config field.
func optionName(field string) string {
	names := map[string]string{
		"Protocol": "protocol", "Paths": "paths", "MaxPaths": "max_paths", "Confidence": "confidence",
		"MaxTTL": "ttl", "FirstTTL": "first_ttl", "SrcPort": "srcport", "DstPort": "dstport",
		"Wait": "wait", "Retries": "retries", "GapLimit": "gap_limit", "Rate": "rate",
	}
	if n, ok := names[field]; ok {
		return n
	}
	return field
}

func protoList(ps []probe.Proto) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
