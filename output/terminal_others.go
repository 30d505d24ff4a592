//go:build !linux

package output

import "io"

// isTerminal reports false: only a trace draws progress, and tracing needs
// Linux.
func isTerminal(w io.Writer) bool { return false }
