package viz

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// contentSecurityPolicy lets the page run its own inline script and style
// and load nothing else: it works offline, and cannot leak the trace.
const contentSecurityPolicy = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

// NewHandler returns the handler of the browser view of traces, as the
// original traceflow served it: the page at / (rendered once, here, the
// same page WriteHTML writes), and the union graph of Build at /nodes.json
// (built at the first request).
func NewHandler(traces []*analysis.Trace) (http.Handler, error) {
	if !Available() {
		return nil, ErrNoLibrary
	}
	page, err := renderTraces(traces, visNetworkJS)
	if err != nil {
		return nil, err
	}
	return newHandler(page, sync.OnceValues(func() ([]byte, error) { return Build(traces).JSON() })), nil
}

func newHandler(page []byte, data func() ([]byte, error)) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		w.Write(page)
	})
	mux.HandleFunc("GET /nodes.json", func(w http.ResponseWriter, r *http.Request) {
		b, err := data()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		w.Write(b)
		w.Write([]byte("\n"))
	})
	return mux
}

// Serve serves h on ln until ctx ends, then shuts the server down (waiting
// at most a second for requests in progress) and returns nil.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
