package fleet

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// User is an account of an embedded server, with the subjects it may
// publish to and subscribe to (none given: all).
type User struct {
	Name, Password     string
	Publish, Subscribe []string
}

// EmbeddedConfig configures an in-process NATS server with JetStream.
type EmbeddedConfig struct {
	// ConfigFile, when given, is a nats-server configuration file (users,
	// accounts and permissions; see docs/nats-server.conf) that the
	// fields below override where they are set.
	ConfigFile string
	// StoreDir is where JetStream keeps the streams (required).
	StoreDir string
	// Host and Port to listen on for clients (default 127.0.0.1, and a
	// free port).
	Host string
	Port int
	// Users, when given, are the only ones let in.
	Users []User
	// Name of the server (default: generated); each node of a cluster
	// needs its own.
	Name string
	// Cluster, when set, makes the server a node of a cluster.
	Cluster *ClusterConfig
}

// ClusterConfig joins an embedded server to a cluster.
type ClusterConfig struct {
	Name string
	// Host and Port to listen on for the other nodes (default 127.0.0.1,
	// and a free port).
	Host string
	Port int
	// Routes are the other nodes' cluster URLs (nats-route://host:port).
	Routes []string
}

// Embedded is a NATS server running in this process.
type Embedded struct {
	s *server.Server
}

// StartEmbedded starts a server as cfg says and waits until it takes
// connections.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("embedded nats: no store directory")
	}
	opts := &server.Options{}
	if cfg.ConfigFile != "" {
		var err error
		if opts, err = server.ProcessConfigFile(cfg.ConfigFile); err != nil {
			return nil, fmt.Errorf("embedded nats: %w", err)
		}
	}
	opts.ServerName, opts.JetStream, opts.StoreDir = cfg.Name, true, cfg.StoreDir
	opts.Host, opts.Port = cfg.Host, cfg.Port
	opts.NoSigs, opts.NoLog = true, true
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	for _, u := range cfg.Users {
		su := &server.User{Username: u.Name, Password: u.Password}
		if u.Publish != nil || u.Subscribe != nil {
			su.Permissions = &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: u.Publish},
				Subscribe: &server.SubjectPermission{Allow: u.Subscribe},
			}
		}
		opts.Users = append(opts.Users, su)
	}
	if c := cfg.Cluster; c != nil {
		opts.Cluster = server.ClusterOpts{Name: c.Name, Host: c.Host, Port: c.Port}
		if opts.Cluster.Host == "" {
			opts.Cluster.Host = "127.0.0.1"
		}
		if opts.Cluster.Port == 0 {
			opts.Cluster.Port = server.RANDOM_PORT
		}
		for _, r := range c.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("embedded nats: route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, errors.New("embedded nats: not ready after 30 s")
	}
	return &Embedded{s: s}, nil
}

// URL is where clients connect.
func (e *Embedded) URL() string { return e.s.ClientURL() }

// ClusterURL is where the other nodes of a cluster connect, or "".
func (e *Embedded) ClusterURL() string {
	if a := e.s.ClusterAddr(); a != nil {
		return "nats-route://" + a.String()
	}
	return ""
}

// Shutdown stops the server and waits until it has.
func (e *Embedded) Shutdown() {
	e.s.Shutdown()
	e.s.WaitForShutdown()
}
