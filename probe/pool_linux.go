package probe

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/traceflow-fast/traceflow-fast/route"
)

// SendPool sends batches of probes from several goroutines, each with its
// own AF_PACKET socket, which sends to any route's next hop. On a veth or a loopback-like path the
// kernel forwards a packet in the context of the system call that sent it,
// so one sending thread does all of that work on one CPU; a pool spreads
// it over several. Send copies the packets into a batch of its own and
// returns at once; it does not allocate.
type SendPool struct {
	mu     sync.RWMutex
	socks  []*Sender                   // per worker
	routes []unix.RawSockaddrLinklayer // per route index
	free   chan *sendJob
	work   chan *sendJob
	wg     sync.WaitGroup
	errMu  sync.Mutex
	err    error
	closed bool
}

type sendJob struct {
	to   unix.RawSockaddrLinklayer
	n    int
	bufs [SendBatch][MaxProbeLen]byte
	pkts [SendBatch][]byte
}

// NewSendPool opens a socket for each of workers sending goroutines (at
// least 1) and starts them. It needs CAP_NET_RAW; AddRoute needs nothing.
func NewSendPool(workers int) (*SendPool, error) {
	workers = max(workers, 1)
	p := &SendPool{
		free: make(chan *sendJob, 4*workers),
		work: make(chan *sendJob, 4*workers),
	}
	for range workers {
		s, err := newSender()
		if err != nil {
			for _, o := range p.socks {
				o.Close()
			}
			return nil, err
		}
		p.socks = append(p.socks, s)
	}
	for range 4 * workers {
		p.free <- new(sendJob)
	}
	for w := range workers {
		p.wg.Add(1)
		go p.run(w)
	}
	return p, nil
}

// AddRoute returns the index for Send of the route toward rt's next hop.
func (p *SendPool) AddRoute(rt *route.Route) (int, error) {
	to, err := linkAddr(rt)
	if err != nil {
		return 0, fmt.Errorf("send pool: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.routes = append(p.routes, to)
	return len(p.routes) - 1, nil
}

// Send queues pkts (complete IP packets of at most MaxProbeLen bytes) to be
// sent by the route of the given index (from AddRoute). It returns the first
// error any worker met so far: once a send failed, the run is over.
func (p *SendPool) Send(index int, pkts [][]byte) error {
	for len(pkts) > 0 {
		if err := p.Err(); err != nil {
			return err
		}
		j := <-p.free
		p.mu.RLock()
		if index < 0 || index >= len(p.routes) {
			p.mu.RUnlock()
			p.free <- j
			return errors.New("send pool: no such route")
		}
		j.to = p.routes[index]
		p.mu.RUnlock()
		j.n = min(len(pkts), SendBatch)
		for i, pkt := range pkts[:j.n] {
			if len(pkt) > MaxProbeLen {
				p.free <- j
				return errors.New("send pool: packet longer than a probe")
			}
			j.pkts[i] = j.bufs[i][:copy(j.bufs[i][:], pkt)]
		}
		pkts = pkts[j.n:]
		p.work <- j
	}
	return nil
}

func (p *SendPool) run(w int) {
	defer p.wg.Done()
	for j := range p.work {
		if p.Err() == nil {
			if _, err := p.socks[w].sendTo(&j.to, j.pkts[:j.n]); err != nil {
				p.fail(err)
			}
		}
		p.free <- j
	}
}

func (p *SendPool) fail(err error) {
	p.errMu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.errMu.Unlock()
}

// Err returns the first send error, if any.
func (p *SendPool) Err() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err
}

// Close waits for the queued batches to be sent, closes the sockets and
// returns the first send error.
func (p *SendPool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return p.Err()
	}
	p.closed = true
	p.mu.Unlock()
	close(p.work)
	p.wg.Wait()
	for _, s := range p.socks {
		s.Close()
	}
	return p.Err()
}
