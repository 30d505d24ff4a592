package monitor

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/tracer"
)

// The metrics and their bounds. Series labelled by destination exist for
// the destinations monitored, and go away with them: at most 5 per
// destination, plus its hop RTT series, at most Config.HopSeries (the
// lowest TTLs first). The rest have no label, or the event type (4 values).
type metrics struct {
	reg *prometheus.Registry

	paths, reached, lastRun, hops *prometheus.GaugeVec // {destination}
	changes                       *prometheus.CounterVec
	hopRTT                        *prometheus.GaugeVec // {destination, ttl, hop}
	events                        *prometheus.CounterVec
	destinations                  prometheus.Gauge
	duration                      prometheus.Histogram
	overruns, unconfirmed         prometheus.Counter

	maxHops int
}

// hopKey is a hop RTT series of a destination.
type hopKey struct {
	ttl  int
	addr netip.Addr
}

func newMetrics(maxHops int, stats func() tracer.Stats) *metrics {
	dst := []string{"destination"}
	m := &metrics{
		reg:     prometheus.NewRegistry(),
		maxHops: maxHops,
		paths:   gaugeVec("traceflow_paths", "Distinct paths found by the last run of the destination.", dst),
		reached: gaugeVec("traceflow_reached", "1 when the last run of the destination reached it, else 0.", dst),
		lastRun: gaugeVec("traceflow_last_run_timestamp_seconds", "When the last run of the destination ended, in seconds since the epoch.", dst),
		hops:    gaugeVec("traceflow_hops", "Hops of the longest path found by the last run of the destination, the destination included.", dst),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "traceflow_path_changes_total",
			Help: "Confirmed changes of the destination's paths or reachability since the monitor started."}, dst),
		hopRTT: gaugeVec("traceflow_hop_rtt_seconds",
			"Median round-trip time of the replies from a hop (address at a TTL) in the last run of the destination.", []string{"destination", "ttl", "hop"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "traceflow_events_total",
			Help: "Events reported, by type."}, []string{"type"}),
		destinations: prometheus.NewGauge(prometheus.GaugeOpts{Name: "traceflow_destinations", Help: "Destinations monitored."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "traceflow_run_duration_seconds",
			Help:    "Time from the start of a destination's run to its result.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}}),
		overruns: prometheus.NewCounter(prometheus.CounterOpts{Name: "traceflow_run_overruns_total",
			Help: "Runs that began late because the destination's previous run outlasted the interval."}),
		unconfirmed: prometheus.NewCounter(prometheus.CounterOpts{Name: "traceflow_unconfirmed_changes_total",
			Help: "Runs whose paths differed from the known ones without the change being confirmed (yet)."}),
	}
	for _, t := range EventTypes {
		m.events.WithLabelValues(t)
	}
	m.reg.MustRegister(m.paths, m.reached, m.lastRun, m.hops, m.changes, m.hopRTT, m.events,
		m.destinations, m.duration, m.overruns, m.unconfirmed,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "traceflow_probes_sent_total",
			Help: "Probes sent, retries included."}, func() float64 { return float64(stats().Sent) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "traceflow_replies_total",
			Help: "Probes answered (first answers only)."}, func() float64 { return float64(stats().Replies) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func gaugeVec(name, help string, labels []string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
}

// record sets the series of d from its last run, t (nil when the
// destination could not be traced), whose distinct paths are s; it
// returns the hop RTT series it now has.
func (m *metrics) record(dst string, t *analysis.Trace, s *snapshot, end time.Time, old []hopKey, scratch map[hopKey][]time.Duration) []hopKey {
	m.paths.WithLabelValues(dst).Set(float64(len(s.Paths)))
	m.reached.WithLabelValues(dst).Set(b2f(s.Reached))
	m.lastRun.WithLabelValues(dst).Set(float64(end.UnixNano()) / 1e9)
	m.hops.WithLabelValues(dst).Set(float64(s.longest()))
	m.changes.WithLabelValues(dst) // from 0, for increase() and rate()
	if t != nil {
		m.duration.Observe(t.End.Sub(t.Start).Seconds())
	}
	keys := m.hopRTTs(dst, t, scratch)
	for _, k := range old {
		if _, ok := scratch[k]; !ok {
			m.hopRTT.DeleteLabelValues(dst, strconv.Itoa(k.ttl), k.addr.String())
		}
	}
	return keys
}

// hopRTTs sets the hop RTT series of dst from t, at most maxHops of them,
// the lowest TTLs first, and returns their keys; scratch is left holding
// the RTTs of those.
func (m *metrics) hopRTTs(dst string, t *analysis.Trace, scratch map[hopKey][]time.Duration) []hopKey {
	clear(scratch)
	if t != nil && m.maxHops > 0 {
		for _, f := range t.Flows {
			for _, h := range f.Hops {
				if h.HasRTT() {
					k := hopKey{h.TTL, h.Addr}
					scratch[k] = append(scratch[k], h.RTT)
				}
			}
		}
	}
	keys := make([]hopKey, 0, len(scratch))
	for k := range scratch {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b hopKey) int { return cmp.Or(cmp.Compare(a.ttl, b.ttl), a.addr.Compare(b.addr)) })
	for _, k := range keys[min(len(keys), m.maxHops):] {
		delete(scratch, k)
	}
	keys = keys[:min(len(keys), m.maxHops)]
	for _, k := range keys {
		rtts := scratch[k]
		slices.Sort(rtts)
		med := rtts[len(rtts)/2]
		if len(rtts)%2 == 0 {
			med = (rtts[len(rtts)/2-1] + med) / 2
		}
		m.hopRTT.WithLabelValues(dst, strconv.Itoa(k.ttl), k.addr.String()).Set(med.Seconds())
	}
	return keys
}

// forget removes every series of dst.
func (m *metrics) forget(dst string) {
	l := prometheus.Labels{"destination": dst}
	for _, v := range []*prometheus.MetricVec{m.paths.MetricVec, m.reached.MetricVec, m.lastRun.MetricVec,
		m.hops.MetricVec, m.changes.MetricVec, m.hopRTT.MetricVec} {
		v.DeletePartialMatch(l)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
