package fleet

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
)

// ConnOptions says how to reach NATS.
type ConnOptions struct {
	// URLs of the servers, comma-separated; user and password may be in
	// the URL (nats://user:pass@host:4222).
	URLs string
	// Creds is a NATS credentials file (a user JWT and its NKey seed, as
	// `nsc generate creds` writes it). It is read once, by Connect.
	Creds string
	// CA is a PEM file of the certificate authorities trusted for TLS.
	// Without it, a server that requires TLS is checked against the
	// system's CAs.
	CA string
	// Cert and Key are a PEM client certificate and its private key, for
	// servers that verify their clients (mutual TLS). Both or neither.
	Cert, Key string
	// Name is the connection's name, as the server shows it.
	Name string
	// Dialer, if set, opens the connections to the servers (tests use it
	// to dial from a network namespace).
	Dialer nats.CustomDialer
}

// Connect connects to NATS. Its errors say what went wrong in one line,
// without the credentials: a file that cannot be used (named), a server
// certificate not trusted, wrong or missing credentials, servers not
// reachable.
func Connect(o ConnOptions) (*nats.Conn, error) {
	opts, err := o.options()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(o.URLs, opts...)
	if err == nil {
		return nc, nil
	}
	return nil, connectError(Redact(o.URLs), err)
}

// options turns o into the NATS client's options, reading its files.
func (o ConnOptions) options() ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Name(o.Name), nats.MaxReconnects(-1),
		// Errors reach the calls they fail (see Client.Submit), not
		// standard error.
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}),
	}
	if o.Dialer != nil {
		opts = append(opts, nats.SetCustomDialer(o.Dialer))
	}
	if o.Creds != "" {
		opt, err := credsOption(o.Creds)
		if err != nil {
			return nil, err
		}
		opts = append(opts, opt)
	}
	if o.CA != "" || o.Cert != "" || o.Key != "" {
		cfg, err := o.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(cfg))
	}
	return opts, nil
}

// tlsConfig reads the CA file and the client certificate.
func (o ConnOptions) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CA != "" {
		pem, err := os.ReadFile(o.CA)
		if err != nil {
			return nil, fileError("nats CA file", o.CA, err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("nats CA file %s: no PEM certificate in it", o.CA)
		}
	}
	if (o.Cert == "") != (o.Key == "") {
		return nil, errors.New("nats client certificate: give both the certificate and its key")
	}
	if o.Cert != "" {
		for _, f := range []string{o.Cert, o.Key} {
			if _, err := os.Stat(f); err != nil {
				return nil, fileError("nats client certificate", f, err)
			}
		}
		c, err := tls.LoadX509KeyPair(o.Cert, o.Key)
		if err != nil {
			// The library's message says what is wrong without quoting
			// the key.
			return nil, fmt.Errorf("nats client certificate %s, key %s: %v", o.Cert, o.Key, err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg, nil
}

// credsOption reads a credentials file once: the user JWT and the seed
// that signs the server's challenge. Its errors name the file and never
// quote it.
func credsOption(path string) (nats.Option, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fileError("nats credentials", path, err)
	}
	defer clear(b)
	bad := func(what string) error { return fmt.Errorf("nats credentials %s: %s", path, what) }
	token, err := jwt.ParseDecoratedJWT(b)
	if err != nil {
		return nil, bad("no user JWT in it")
	}
	claims, err := jwt.DecodeUserClaims(token)
	if err != nil {
		return nil, bad("no user JWT in it")
	}
	kp, err := jwt.ParseDecoratedUserNKey(b)
	if err != nil {
		return nil, bad("no user NKey seed in it")
	}
	if pub, err := kp.PublicKey(); err != nil || pub != claims.Subject {
		return nil, bad("its NKey seed is not the key of its JWT's user")
	}
	return nats.UserJWT(
		func() (string, error) { return token, nil },
		func(nonce []byte) ([]byte, error) { return kp.Sign(nonce) },
	), nil
}

// fileError says that file, what it is for, cannot be read, without
// repeating its name twice.
func fileError(what, file string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("%s %s: %w", what, file, err)
}

// connectError explains a failed connection to where in one line.
func connectError(where string, err error) error {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	switch {
	case errors.Is(err, nats.ErrAuthorization):
		return fmt.Errorf("nats %s: authorization refused: wrong or missing credentials", where)
	case errors.Is(err, nats.ErrAuthExpired):
		return fmt.Errorf("nats %s: credentials expired", where)
	case errors.As(err, &unknown):
		return fmt.Errorf("nats %s: TLS: the server's certificate is not signed by a trusted CA (give its CA file)", where)
	case errors.As(err, &invalid), errors.As(err, &host):
		return fmt.Errorf("nats %s: TLS: the server's certificate is not valid for it: %s", where, Redact(err.Error()))
	case strings.Contains(err.Error(), "certificate required"),
		// What a refused client certificate looks like when the server
		// closes the connection before its alert is read.
		errors.Is(err, nats.ErrTLS) && strings.Contains(err.Error(), "after TLS handshake"):
		return fmt.Errorf("nats %s: TLS: the server wants a client certificate it trusts", where)
	case errors.Is(err, nats.ErrNoServers):
		return fmt.Errorf("nats %s: no server reachable", where)
	}
	return fmt.Errorf("nats %s: %s", where, Redact(err.Error()))
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
