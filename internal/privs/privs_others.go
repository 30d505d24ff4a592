//go:build !linux

package privs

// Drop does nothing: tracing needs Linux, and the capability
// model it drops is Linux's.
func Drop() error { return nil }

// KeepTracing does nothing, as Drop.
func KeepTracing() error { return nil }
