package fleet

import (
	"github.com/traceflow-fast/traceflow-fast/tracer"
)

// NewRequest returns the request that asks an agent to probe as cfg says:
// the probing options of a run, by their flag names, as the command line
// sets them. What belongs to the host that runs it (Interface, Source,
// Window, Network, ...) is left out: the agent has its own. Rate
// tracer.Unlimited becomes 0, the agent's own limit. The caller sets ID,
// Targets, IPv6 and Seed.
func NewRequest(cfg tracer.Config) Request {
	r := Request{
		Protocol: cfg.Protocol.String(), Paths: cfg.Paths, MaxPaths: cfg.MaxPaths,
		Confidence: cfg.Confidence * 100, FirstTTL: cfg.FirstTTL, MaxTTL: cfg.MaxTTL,
		SrcPort: cfg.SrcPort, DstPort: cfg.DstPort, Wait: cfg.Wait.Seconds(),
		GapLimit: cfg.GapLimit, TOS: int(cfg.TOS), Rate: max(cfg.Rate, 0), NoStopSet: cfg.NoStopSet,
	}
	switch {
	case cfg.Retries == tracer.NoRetries:
		r.Retries = new(int)
	case cfg.Retries > 0:
		n := cfg.Retries
		r.Retries = &n
	}
	return r
}
