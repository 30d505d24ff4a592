package tracertest_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// A hand-made trace through the lab's 4-way diamond, done as the engine
// does it: probes built by package probe, a goroutine reading the
// replies and matching them, waits through the network's clock. A run of
// the engine given this network and its Clock does all of this itself.
func Example() {
	topo := tracertest.Diamond(4)
	topo.Node("a3").Silent = true
	net, err := tracertest.NewNetwork(topo, &tracertest.Options{Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer net.Close()
	clock := net.Clock()

	dst := tracertest.DstAddr
	route, err := net.Route(context.Background(), dst)
	if err != nil {
		log.Fatal(err)
	}
	tag, release, _ := net.ReserveTag()
	defer release()
	spec := &probe.Spec{Src: route.Src, BaseSrcPort: 33000, DstPort: 33434, Paths: 6, Tag: tag, Epoch: clock.Now()}
	rx, err := net.Listen(spec)
	if err != nil {
		log.Fatal(err)
	}
	answers := matchReplies(rx, spec)

	// Every path ID, TTL 1 to 4, at once.
	var pkts [][]byte
	for path := 1; path <= spec.Paths; path++ {
		for ttl := 1; ttl <= 4; ttl++ {
			b := make([]byte, probe.MaxProbeLen)
			pkts = append(pkts, b[:spec.Encode(b, dst, path, ttl, clock.Now())])
		}
	}
	if err := net.Send(route.Link, pkts); err != nil {
		log.Fatal(err)
	}
	hops := map[[2]int]string{}
	timer := clock.NewTimer()
	timer.Reset(time.Second)
wait:
	for {
		select {
		case a := <-answers:
			hops[[2]int{int(a.Path), int(a.TTL)}] = fmt.Sprintf("%-10v %v", a.From, a.RTT)
		case <-timer.C():
			break wait
		}
	}
	rx.Close()
	printHops(hops, spec.Paths)
	// What there was to find.
	truth, _ := net.Paths(spec, dst)
	for _, p := range truth {
		fmt.Println(p)
	}
	// Output:
	// path 1:  10.0.0.1   2ms  *               10.2.3.2   6ms  10.99.0.1  8ms
	// path 2:  10.0.0.1   2ms  10.1.1.2   4ms  10.2.1.2   6ms  10.99.0.1  8ms
	// path 3:  10.0.0.1   2ms  10.1.1.2   4ms  10.2.1.2   6ms  10.99.0.1  8ms
	// path 4:  10.0.0.1   2ms  *               10.2.3.2   6ms  10.99.0.1  8ms
	// path 5:  10.0.0.1   2ms  10.1.4.2   4ms  10.2.4.2   6ms  10.99.0.1  8ms
	// path 6:  10.0.0.1   2ms  10.1.2.2   4ms  10.2.2.2   6ms  10.99.0.1  8ms
	// 10.0.0.1 * 10.2.3.2 10.99.0.1
	// 10.0.0.1 10.1.1.2 10.2.1.2 10.99.0.1
	// 10.0.0.1 10.1.2.2 10.2.2.2 10.99.0.1
	// 10.0.0.1 10.1.4.2 10.2.4.2 10.99.0.1
}

// matchReplies reads rx, as the engine's receive loop does, and passes on
// the replies that answer the probes of spec.
func matchReplies(rx tracer.Receiver, spec *probe.Spec) <-chan probe.Answer {
	answers := make(chan probe.Answer)
	go func() {
		defer close(answers)
		m := probe.NewMatcher(spec)
		var r probe.Reply
		var a probe.Answer
		for {
			_, err := rx.ReadBatch(func(pkt []byte, ts time.Time) {
				if m.Match(pkt, ts, &r, &a) {
					answers <- a
				}
			})
			if err != nil {
				return
			}
		}
	}()
	return answers
}

// printHops prints the hop of each (path ID, TTL), "*" where none
// answered.
func printHops(hops map[[2]int]string, paths int) {
	for path := 1; path <= paths; path++ {
		fmt.Printf("path %d:", path)
		for ttl := 1; ttl <= 4; ttl++ {
			if h, ok := hops[[2]int{path, ttl}]; ok {
				fmt.Printf("  %s", h)
			} else {
				fmt.Printf("  %-14s", "*")
			}
		}
		fmt.Println()
	}
}
