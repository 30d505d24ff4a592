//go:build !linux

package probe

import "fmt"

// ReserveTag is not implemented on this system: it returns an error that
// matches errors.Is(err, errors.ErrUnsupported).
func ReserveTag() (tag uint16, release func(), err error) {
	return 0, nil, fmt.Errorf("lock run tag: %w", errUnsupported)
}
