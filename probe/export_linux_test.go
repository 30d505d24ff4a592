package probe

import "time"

// SendStall is how long Send retries a full device queue without progress.
const SendStall = sendStall

// SetSendClock makes s time its back-off on a full device queue with now
// and sleep instead of the system's clock.
func SetSendClock(s *Sender, now func() time.Time, sleep func(time.Duration)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now, s.sleep = now, sleep
}
