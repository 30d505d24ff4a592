package netnstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strconv"
)

// Prefix returns a fresh prefix for a group of namespaces of this process:
// "tfx" + PID + tag + 6 random hex digits. tag is one lowercase letter
// naming the package that builds them (see the package documentation).
// The PID lets [Sweep] tell the namespaces of a test process that is gone.
func Prefix(tag string) string {
	if !validTag(tag) {
		panic(fmt.Sprintf("netnstest: tag %q is not one lowercase letter", tag))
	}
	var r [3]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("tfx%d%s%s", os.Getpid(), tag, hex.EncodeToString(r[:]))
}

func validTag(tag string) bool { return len(tag) == 1 && tag[0] >= 'a' && tag[0] <= 'z' }

// creators match the names of namespaces that tests make, the PID of the
// test process that made them in the group: Prefix's, and the "cb" + PID +
// "-" + 6 hex digits + "-bpf" that bpf's tests gave theirs before they used
// this package.
var creators = []*regexp.Regexp{
	regexp.MustCompile(`^tfx([0-9]+)[a-z][0-9a-f]{6}-`),
	regexp.MustCompile(`^cb([0-9]+)-[0-9a-f]{6}-bpf$`),
}

// Creator returns the PID of the test process that made the namespace
// name, or 0 if name is not one a test makes.
func Creator(name string) int {
	for _, re := range creators {
		if m := re.FindStringSubmatch(name); m != nil {
			if pid, err := strconv.Atoi(m[1]); err == nil && pid > 0 {
				return pid
			}
		}
	}
	return 0
}
