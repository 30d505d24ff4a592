package tracer_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"slices"
	"strings"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/targets"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// Trace one destination with 16 path IDs and print its distinct paths.
// The probes go through a simulated 4-way diamond here; leave
// Config.Network and Config.Clock unset to probe from this host, which
// needs CAP_NET_RAW.
func Example() {
	sim, err := tracertest.NewNetwork(tracertest.Diamond(4), nil)
	if err != nil {
		log.Fatal(err)
	}
	cfg := tracer.Config{Paths: 16, Network: sim, Clock: sim.Clock()}
	dst := tracer.Addrs(netip.MustParseAddr("10.99.0.1"))
	_, err = tracer.Trace(context.Background(), cfg, dst, tracer.SinkFunc(func(t *analysis.Trace) error {
		fmt.Println(t.Summary())
		for _, p := range t.UniquePaths() {
			fmt.Println(p.Hops, p.PathIDs)
		}
		return nil
	}))
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// 4 distinct paths among 16 path IDs
	// [10.0.0.1 10.1.2.2 10.2.2.2 10.99.0.1] [1 3 5 10 15]
	// [10.0.0.1 10.1.1.2 10.2.1.2 10.99.0.1] [2 4 6 9 11 12 13]
	// [10.0.0.1 10.1.4.2 10.2.4.2 10.99.0.1] [7 14]
	// [10.0.0.1 10.1.3.2 10.2.3.2 10.99.0.1] [8 16]
}

// A bulk run: the destinations of a target file, traced in a random order
// with the MDA search, each result handed to a callback as soon as its
// destination is finished. Open does what needs privileges (a program may
// drop them after it), Run the rest.
func Example_bulk() {
	file := strings.NewReader("# lab destinations\n10.99.1.0/29\n10.99.2.1\n")
	b := targets.NewBuilder(targets.Options{})
	if err := b.AddFile(context.Background(), file, "targets.txt"); err != nil {
		log.Fatal(err)
	}
	set, err := b.Build()
	if err != nil {
		log.Fatal(err)
	}

	sim, err := tracertest.NewNetwork(tracertest.Diamond(4), nil)
	if err != nil {
		log.Fatal(err)
	}
	cfg := tracer.Config{Network: sim, Clock: sim.Clock()}
	tr, err := tracer.Open(context.Background(), cfg, tracer.Shuffle(set, 1))
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	var lines []string
	sum, err := tr.Run(context.Background(), tracer.SinkFunc(func(t *analysis.Trace) error {
		lines = append(lines, fmt.Sprintf("%-10s %d distinct paths", t.Destination, len(t.UniquePaths())))
		return nil
	}))
	if err != nil {
		log.Fatal(err)
	}
	slices.Sort(lines) // they come in the order destinations finish
	fmt.Println(strings.Join(lines, "\n"))
	fmt.Printf("%d destinations, %d reached\n", sum.Done, sum.Reached)
	// Output:
	// 10.99.1.1  4 distinct paths
	// 10.99.1.2  4 distinct paths
	// 10.99.1.3  4 distinct paths
	// 10.99.1.4  4 distinct paths
	// 10.99.1.5  4 distinct paths
	// 10.99.1.6  4 distinct paths
	// 10.99.2.1  4 distinct paths
	// 7 destinations, 7 reached
}
