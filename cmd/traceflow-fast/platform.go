package main

import (
	"fmt"
	"runtime"
)

// goos is the system the command runs on; tests set it to see what the
// command does on another.
var goos = runtime.GOOS

// needLinux returns the error that ends a trace at once on a system other
// than Linux, where the command builds (its diff needs nothing else) but
// cannot send or capture probes.
func needLinux() error {
	if goos == "linux" {
		return nil
	}
	return fmt.Errorf("tracing needs Linux (AF_PACKET sockets and socket filters); this is %s", goos)
}
