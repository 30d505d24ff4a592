package probe

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// TagLockDir is where runs on this host record the tags they hold.
var tagLockDir = "/run/lock/traceflow-fast"

// ReserveTag picks a random run tag that no other traceflow-fast process on
// this host holds, so that two runs at the same time never accept each
// other's replies. It holds an flock(2) on a file per tag until release is
// called (or the process exits). When the lock directory cannot be used it
// falls back to an unreserved random tag.
func ReserveTag() (tag uint16, release func(), err error) {
	dir := tagLockDir
	if err := os.MkdirAll(dir, 0o1777); err != nil {
		dir = filepath.Join(os.TempDir(), "traceflow-fast")
		if err := os.MkdirAll(dir, 0o1777); err != nil {
			return uint16(1 + rand.IntN(MaxTag)), func() {}, nil
		}
	}
	start := rand.IntN(MaxTag)
	for i := 0; i < MaxTag; i++ {
		t := uint16(1 + (start+i)%MaxTag)
		name := filepath.Join(dir, "tag-"+strconv.Itoa(int(t)))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o666)
		if err != nil {
			return uint16(1 + rand.IntN(MaxTag)), func() {}, nil
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return t, func() { f.Close() }, nil
		}
		f.Close()
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return 0, nil, fmt.Errorf("lock run tag: %w", err)
		}
	}
	return 0, nil, errors.New("lock run tag: all 1023 run tags are in use on this host")
}
