// Package tracer is traceflow-fast's engine: it traces the paths to many
// destinations at once, keeping the 5-tuple of each path ID (flow) fixed
// while the TTL varies, and hands each destination's result to a sink as
// soon as it is finished.
package tracer
