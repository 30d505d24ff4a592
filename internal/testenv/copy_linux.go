package testenv

import (
	"os"

	"golang.org/x/sys/unix"
)

// unfitDir makes dir 0755 and tells why nobody could not run a binary with
// file capabilities from it, or "".
func unfitDir(dir string) string {
	if err := os.Chmod(dir, 0o755); err != nil {
		return err.Error()
	}
	if why := searchable(dir); why != "" {
		return why
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return err.Error()
	}
	if st.Flags&unix.ST_NOSUID != 0 {
		return "mounted nosuid: file capabilities are ignored"
	}
	return ""
}
