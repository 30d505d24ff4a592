//go:build !linux

package testenv

import "os"

// unfitDir makes dir 0755 and tells why nobody could not run a binary
// from it, or "".
func unfitDir(dir string) string {
	if err := os.Chmod(dir, 0o755); err != nil {
		return err.Error()
	}
	return searchable(dir)
}
