package viz

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// contentSecurityPolicy lets the page run its own inline script and style
// and load nothing else: it works offline, and cannot leak the trace.
const contentSecurityPolicy = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

// NewHandler returns the handler of the browser view of traces, as the
// original traceflow served it: the page at /, and the data it draws at
// /nodes.json. The page is rendered once, here.
func NewHandler(traces []*analysis.Trace) (http.Handler, error) {
	if !Available() {
		return nil, ErrNoLibrary
	}
	d := Build(traces)
	page, err := render(d, visNetworkJS)
	if err != nil {
		return nil, err
	}
	data, err := d.JSON()
	if err != nil {
		return nil, err
	}
	return newHandler(page, data), nil
}

func newHandler(page, data []byte) http.Handler {
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
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		w.Write(data)
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
