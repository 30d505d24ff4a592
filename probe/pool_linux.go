package probe

import (
	"errors"
	"sync"
)

// SendPool sends batches of probes from several goroutines, each with its
// own AF_PACKET socket per route. On a veth or a loopback-like path the
// kernel forwards a packet in the context of the system call that sent it,
// so one sending thread does all of that work on one CPU; a pool spreads
// it over several. Send copies the packets into a batch of its own and
// returns at once; it does not allocate.
type SendPool struct {
	mu     sync.RWMutex
	socks  [][]*Sender // [worker][route]
	free   chan *sendJob
	work   chan *sendJob
	wg     sync.WaitGroup
	errMu  sync.Mutex
	err    error
	closed bool
}

type sendJob struct {
	route int
	n     int
	bufs  [SendBatch][Len]byte
	pkts  [SendBatch][]byte
}

// NewSendPool starts workers sending goroutines (at least 1).
func NewSendPool(workers int) *SendPool {
	workers = max(workers, 1)
	p := &SendPool{
		socks: make([][]*Sender, workers),
		free:  make(chan *sendJob, 4*workers),
		work:  make(chan *sendJob, 4*workers),
	}
	for range 4 * workers {
		p.free <- new(sendJob)
	}
	for w := range workers {
		p.wg.Add(1)
		go p.run(w)
	}
	return p
}

// AddRoute opens a socket per worker toward rt and returns the route's
// index for Send.
func (p *SendPool) AddRoute(rt *Route) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	opened := make([]*Sender, 0, len(p.socks))
	for range p.socks {
		s, err := NewSender(rt)
		if err != nil {
			for _, o := range opened {
				o.Close()
			}
			return 0, err
		}
		opened = append(opened, s)
	}
	for w := range p.socks {
		p.socks[w] = append(p.socks[w], opened[w])
	}
	return len(p.socks[0]) - 1, nil
}

// Send queues pkts (complete IPv4 packets of at most Len bytes) to be sent
// by route. It returns the first error any worker met so far: once a send
// failed, the run is over.
func (p *SendPool) Send(route int, pkts [][]byte) error {
	for len(pkts) > 0 {
		if err := p.Err(); err != nil {
			return err
		}
		j := <-p.free
		j.route = route
		j.n = min(len(pkts), SendBatch)
		for i, pkt := range pkts[:j.n] {
			if len(pkt) > Len {
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
		p.mu.RLock()
		s := p.socks[w][j.route]
		p.mu.RUnlock()
		if p.Err() == nil {
			if _, err := s.Send(j.pkts[:j.n]); err != nil {
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
	for _, socks := range p.socks {
		for _, s := range socks {
			s.Close()
		}
	}
	return p.Err()
}
