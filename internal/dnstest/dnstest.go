// Package dnstest serves reverse DNS names to tests from a table.
package dnstest

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Server is a tiny DNS server for tests: it answers PTR questions from a
// table, NXDOMAIN for addresses not in it, and never answers the addresses
// in silent. It counts the questions per address.
type Server struct {
	conn   net.PacketConn
	names  map[netip.Addr]string
	delay  time.Duration
	silent map[netip.Addr]bool

	mu      sync.Mutex
	queries map[netip.Addr]int
}

// Serve answers on conn (a UDP socket the test opened, on loopback or in
// a lab namespace) until the test ends.
func Serve(t testing.TB, conn net.PacketConn, names map[string]string) *Server {
	t.Helper()
	s := &Server{conn: conn, names: map[netip.Addr]string{}, silent: map[netip.Addr]bool{}, queries: map[netip.Addr]int{}}
	for a, n := range names {
		s.names[netip.MustParseAddr(a)] = n
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		for {
			buf := make([]byte, 1500)
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			go s.answer(buf[:n], from)
		}
	}()
	return s
}

// Slow makes every answer wait delay, and never answers the silent
// addresses.
func (s *Server) Slow(delay time.Duration, silent ...netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = delay
	for _, a := range silent {
		s.silent[a] = true
	}
}

// Count returns how many questions were asked about a.
func (s *Server) Count(a netip.Addr) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[a]
}

func (s *Server) answer(msg []byte, from net.Addr) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return
	}
	q, err := p.Question()
	if err != nil {
		return
	}
	addr, ok := arpaAddr(q.Name.String())
	s.mu.Lock()
	s.queries[addr]++
	silent, delay := s.silent[addr], s.delay
	s.mu.Unlock()
	if silent {
		return
	}
	time.Sleep(delay)
	name, found := s.names[addr]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if !ok || !found || q.Type != dnsmessage.TypePTR {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.StartQuestions()
	b.Question(q)
	if rh.RCode == dnsmessage.RCodeSuccess {
		b.StartAnswers()
		b.PTRResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60},
			dnsmessage.PTRResource{PTR: dnsmessage.MustNewName(name)})
	}
	out, err := b.Finish()
	if err != nil {
		return
	}
	s.conn.WriteTo(out, from)
}

// arpaAddr reads "4.3.2.1.in-addr.arpa." as 1.2.3.4.
func arpaAddr(name string) (netip.Addr, bool) {
	rest, ok := strings.CutSuffix(strings.ToLower(name), ".in-addr.arpa.")
	if !ok {
		return netip.Addr{}, false
	}
	l := strings.Split(rest, ".")
	if len(l) != 4 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(l[3] + "." + l[2] + "." + l[1] + "." + l[0])
	return a, err == nil
}

// Loopback starts a Server on 127.0.0.1 and returns it with a resolver
// that asks only it.
func Loopback(t testing.TB, names map[string]string) (*Server, *net.Resolver) {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := Serve(t, conn, names)
	addr := conn.LocalAddr().String()
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	return s, r
}
