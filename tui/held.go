package tui

import (
	"bytes"
	"io"
	"sync"
)

// held is a writer that holds back what is written to it while the view
// covers the terminal (from hold to release), and writes it through
// otherwise: results and logs reach the screen after the view is gone, in
// the order written.
type held struct {
	mu      sync.Mutex
	w       io.Writer
	buf     bytes.Buffer
	holding bool
	last    string // the last complete line written while holding
}

func newHeld(w io.Writer) *held { return &held{w: w} }

// hold starts holding back what is written.
func (h *held) hold() {
	h.mu.Lock()
	h.holding = true
	h.mu.Unlock()
}

func (h *held) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.holding {
		return h.w.Write(p)
	}
	h.buf.Write(p)
	b := bytes.TrimRight(h.buf.Bytes(), "\n")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	if len(p) > 0 && p[len(p)-1] == '\n' {
		h.last = string(b)
	}
	return len(p), nil
}

// lastLine returns the last line written while holding.
func (h *held) lastLine() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// release writes what was held and lets later writes through.
func (h *held) release() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.holding {
		return nil
	}
	h.holding = false
	_, err := h.buf.WriteTo(h.w)
	return err
}
