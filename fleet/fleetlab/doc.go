// Package fleetlab tests package fleet end to end with real sockets, as
// root: a 3-node cluster of nats-server processes with TLS and users, and
// `traceflow-fast agent` processes tracing from the probers of network
// labs (internal/lab). It holds tests only.
package fleetlab
