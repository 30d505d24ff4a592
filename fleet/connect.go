package fleet

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/nats-io/nats.go"
)

// ConnOptions says how to reach NATS.
type ConnOptions struct {
	// URLs of the servers, comma-separated; user and password may be in
	// the URL (nats://user:pass@host:4222).
	URLs string
	// Creds is a NATS credentials file (JWT and NKey seed).
	Creds string
	// CA is a PEM file of the certificate authorities trusted for TLS.
	CA string
	// Name is the connection's name, as the server shows it.
	Name string
}

// Connect connects to NATS. Its errors say what went wrong in one line,
// without the credentials: wrong or missing credentials, servers not
// reachable.
func Connect(o ConnOptions) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(o.Name), nats.MaxReconnects(-1),
		// Errors reach the calls they fail (see Client.Submit), not
		// standard error.
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}),
	}
	if o.Creds != "" {
		opts = append(opts, nats.UserCredentials(o.Creds))
	}
	if o.CA != "" {
		opts = append(opts, nats.RootCAs(o.CA))
	}
	nc, err := nats.Connect(o.URLs, opts...)
	if err == nil {
		return nc, nil
	}
	where := Redact(o.URLs)
	switch {
	case errors.Is(err, nats.ErrAuthorization):
		return nil, fmt.Errorf("nats %s: authorization refused: wrong or missing credentials", where)
	case errors.Is(err, nats.ErrAuthExpired):
		return nil, fmt.Errorf("nats %s: credentials expired", where)
	case errors.Is(err, nats.ErrNoServers):
		return nil, fmt.Errorf("nats %s: no server reachable", where)
	}
	return nil, fmt.Errorf("nats %s: %s", where, Redact(err.Error()))
}

// Redact returns s, a list of URLs or a message quoting them, with the
// passwords of its URLs replaced by "xxxxx".
func Redact(s string) string {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
	for _, f := range fields {
		u, err := url.Parse(f)
		if err != nil || u.User == nil {
			continue
		}
		if _, has := u.User.Password(); has {
			s = strings.ReplaceAll(s, f, u.Redacted())
		}
	}
	return s
}
