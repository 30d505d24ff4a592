//go:build !linux

package main

// dropPrivileges does nothing: tracing needs Linux, and the capability
// model it drops is Linux's.
func dropPrivileges() error { return nil }
