package testenv

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// PublicCopy copies the executable src into a new directory that user
// nobody can reach and on a file system that honours file capabilities
// (not mounted nosuid), and returns the copy's path. The directory is
// removed when the test ends.
func PublicCopy(t testing.TB, src string) string {
	t.Helper()
	var tried []string
	for _, base := range []string{os.TempDir(), "/var/tmp"} {
		dir, err := os.MkdirTemp(base, "traceflow-fast-privs")
		if err != nil {
			tried = append(tried, err.Error())
			continue
		}
		if why := unfitDir(dir); why != "" {
			os.RemoveAll(dir)
			tried = append(tried, dir+": "+why)
			continue
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		dst := filepath.Join(dir, filepath.Base(src))
		if err := copyFile(dst, src); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	t.Fatalf("no directory for a binary that user nobody runs with file capabilities: %s", strings.Join(tried, "; "))
	return ""
}

// searchable says why others cannot reach dir, or "".
func searchable(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err.Error()
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return d + " is not searchable by others (" + fi.Mode().String() + ")"
		}
		if d == filepath.Dir(d) {
			return ""
		}
	}
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
