package fleet

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/tracer"
)

// A request built from a run's settings gives the agent the same settings
// back, through JSON as it travels.
func TestNewRequestRoundTrip(t *testing.T) {
	for _, cfg := range []tracer.Config{
		{Protocol: probe.ProtoTCP, Paths: 16, MaxPaths: 16, Confidence: 0.95, FirstTTL: 2, MaxTTL: 12, SrcPort: 40000,
			DstPort: 443, Wait: 1500 * time.Millisecond, Retries: tracer.NoRetries, GapLimit: 3, TOS: 16, Rate: 250},
		{Protocol: probe.ProtoICMP, MaxPaths: 64, Confidence: 0.99, FirstTTL: 1, MaxTTL: 30, SrcPort: 33452,
			Wait: time.Second, Retries: 2, GapLimit: 5, Rate: 1000},
		{Protocol: probe.ProtoUDP, MaxPaths: 256, Confidence: 0.95, FirstTTL: 1, MaxTTL: 30, SrcPort: 33452,
			Wait: time.Second, Retries: 1, GapLimit: 5, Rate: tracer.Unlimited},
	} {
		req := NewRequest(cfg)
		req.ID, req.Targets = "m1", []string{"192.0.2.1"}
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeRequest(b)
		if err != nil {
			t.Fatal(err)
		}
		lim := Limits{MaxRate: 5000}.withDefaults()
		p, err := lim.check(context.Background(), back, tracer.Config{})
		if err != nil {
			t.Fatalf("%+v: %v", cfg, err)
		}
		want := cfg
		if want.Rate == tracer.Unlimited {
			want.Rate = lim.MaxRate // no limit asked: the agent's
		}
		if p.cfg != want {
			t.Errorf("request %s\ngave %+v\nwant %+v", b, p.cfg, want)
		}
	}
}
