package analysis

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// jsonSeeds returns records as WriteJSON writes them: those of
// jsonSeedTraces.
func jsonSeeds(tb testing.TB) [][]byte {
	var out [][]byte
	for _, tr := range jsonSeedTraces(tb) {
		var b bytes.Buffer
		if err := WriteJSON(&b, tr, Options{}); err != nil {
			tb.Fatal(err)
		}
		out = append(out, b.Bytes())
	}
	return out
}

// jsonSeedTraces returns traces with diamonds, silent hops, an IPv6
// destination, AS numbers, per-packet load balancing, MDA.
func jsonSeedTraces(tb testing.TB) []*Trace {
	d := collect(tb, diamond(8))
	sparse := diamond(6)
	sparse[2].hops = []string{"10.0.0.1", "", "10.2.0.1"}
	sparse[4] = flowSpec{}
	partial := collect(tb, sparse)
	partial.Partial = true
	partial.MDA = &MDA{Confidence: 0.95, MaxPaths: 256}
	partial.RateLimits = []RateLimit{
		{TTL: 1, After: testSrc, Pace: 12.5, Silences: 3},
		{TTL: 2, Silences: 1},
		{TTL: 2, After: netip.MustParseAddr("10.0.0.1"), Pace: 0.7, Silences: 9, Recovered: 4},
	}
	partial.Flows[2].Hops[1].Unsettled = true
	partial.Reused = []ReusedVertex{{TTL: 1, Addr: netip.MustParseAddr("10.0.0.1"), From: netip.MustParseAddr("10.9.0.7")}}

	c := NewCollector(netip.MustParseAddr("2001:db8::1"), `odd "name" <&>`, netip.Addr{}, 2, 4, 1000, 2000)
	c.Reply(1, 2, netip.MustParseAddr("2001:db8::ff"), 1234567*time.Nanosecond, 3, 1, false)
	c.Reply(2, 1, netip.MustParseAddr("2001:db8::1"), 999*time.Microsecond, 3, 3, true)
	v6 := c.Trace(testStart, testStart.Add(time.Hour), false)

	asn := withASNs(collect(tb, diamond(4)), labASNs)
	asn.Flows[0].Hops[0].IXP = "LAB-IX"
	asn.Flows[1].Hops[1].Hostname = "r1.lab.example"

	pp := NewCollector(testDst, "d", testSrc, 2, 4, testSrcBase, testDstPort)
	for p := 1; p <= 2; p++ {
		pp.Reply(p, 1, netip.MustParseAddr("10.0.0.1"), time.Millisecond, 11, 0, false)
		pp.Reply(p, 2, testDst, 2*time.Millisecond, 3, 3, true)
	}
	pp.Observe(1, 1, netip.MustParseAddr("10.0.0.2"))
	perPacket := pp.Trace(testStart, testStart, false)

	return []*Trace{d, partial, v6, asn, perPacket}
}

// Bounds on what ReadJSON may make of an input of n bytes, whatever the
// bytes say: a constant plus a constant factor.
//
// allocBound bounds the bytes of the traces it returns (traceBytesHeld).
// The factor covers a 3-byte "{}," in "flows", which becomes a Flow, and
// the silent hops that sparse TTLs imply (at most one Hop of 96 bytes per
// byte of the line). Without that last bound 24 bytes could claim 255
// hops, 24 KiB. What encoding/json allocates on the way is linear in the
// input, and bounded in number by allocsBound.
func allocBound(n int) uint64 { return 64<<10 + 512*uint64(n) }

// allocsBound bounds the number of allocations (testing.AllocsPerRun).
func allocsBound(n int) float64 { return 256 + float64(n) }

// traceBytesHeld returns the bytes t holds: its structs, slices and
// strings.
func traceBytesHeld(t *Trace) uint64 {
	n := uint64(unsafe.Sizeof(*t)) + uint64(len(t.Name)+len(t.Protocol))
	if t.MDA != nil {
		n += uint64(unsafe.Sizeof(*t.MDA)) + 8*uint64(len(t.MDA.Incomplete))
	}
	for _, pp := range t.PerPacket {
		n += uint64(unsafe.Sizeof(pp)) + uint64(unsafe.Sizeof(netip.Addr{}))*uint64(len(pp.Addrs))
	}
	n += uint64(unsafe.Sizeof(RateLimit{})) * uint64(len(t.RateLimits))
	n += uint64(unsafe.Sizeof(ReusedVertex{})) * uint64(len(t.Reused))
	for _, f := range t.Flows {
		n += uint64(unsafe.Sizeof(f))
		for _, h := range f.Hops {
			n += uint64(unsafe.Sizeof(h)) + uint64(len(h.IXP)+len(h.Hostname)) +
				uint64(unsafe.Sizeof(probe.MPLSLabel{}))*uint64(len(h.MPLS))
			for _, in := range h.Interfaces {
				n += uint64(unsafe.Sizeof(in)) + uint64(len(in.Name))
			}
		}
	}
	return n
}

// readAllJSON reads every trace of in, checking that ReadJSON yields a
// trace or an error each time, and stops after an error.
func readAllJSON(t *testing.T, in []byte) []*Trace {
	var traces []*Trace
	failed := false
	for tr, err := range ReadJSON(bytes.NewReader(in)) {
		if failed {
			t.Fatal("ReadJSON went on after an error")
		}
		if (tr == nil) == (err == nil) {
			t.Fatalf("ReadJSON yielded trace %v and error %v", tr, err)
		}
		if err != nil {
			failed = true
			continue
		}
		traces = append(traces, tr)
	}
	return traces
}

// FuzzReadJSON checks that no input makes ReadJSON panic, allocate more
// than allocsBound times or return traces larger than allocBound, that it
// yields either a Trace or an error (and stops after an error), and that
// what it accepts is a Trace like any other: WriteJSON writes it as
// encoding/json does, ReadJSON reads that back as the same trace field by
// field, and DiffTraces finds no change between the two.
func FuzzReadJSON(f *testing.F) {
	seeds := jsonSeeds(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Add(bytes.Join(seeds, nil))
	f.Add([]byte("{}\n\n  \n{}"))
	f.Add([]byte(`{"flows":[{"path_id":1,"hops":[{"ttl":3,"addr":"10.0.0.1"}]}]}`))

	f.Fuzz(func(t *testing.T, in []byte) {
		traces := readAllJSON(t, in)
		allocs := testing.AllocsPerRun(1, func() {
			for range ReadJSON(bytes.NewReader(in)) {
			}
		})
		if limit := allocsBound(len(in)); allocs > limit {
			t.Fatalf("ReadJSON allocated %v times for %d bytes of input, more than %v", allocs, len(in), limit)
		}
		held := uint64(0)
		for _, tr := range traces {
			held += traceBytesHeld(tr)
		}
		if limit := allocBound(len(in)); held > limit {
			t.Fatalf("ReadJSON returned traces of %d bytes for %d bytes of input, more than %d", held, len(in), limit)
		}

		if d := DiffTraces(traces, traces, DiffOptions{}); d.Changed() {
			t.Fatalf("DiffTraces of traces with themselves: %+v", d.Destinations)
		}
		for _, tr := range traces {
			tr.UniquePaths()
			// WriteJSON writes what encoding/json writes, or fails alike.
			if !checkWriteJSON(t, "read trace", tr) {
				return
			}
			checkJSONRoundTrip(t, tr)
		}
	})
}

// TestReadJSONSeeds checks that the seed records decode: a fuzz target
// whose seeds all fail explores only the error paths.
func TestReadJSONSeeds(t *testing.T) {
	for i, s := range jsonSeeds(t) {
		for _, err := range ReadJSON(bytes.NewReader(s)) {
			if err != nil {
				t.Errorf("seed %d: %v", i, err)
			}
		}
	}
	// The records of real runs in the corpus directory.
	for name, rec := range jsonCorpus(t, "lab-*") {
		n := 0
		for _, err := range ReadJSON(strings.NewReader(rec)) {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			n++
		}
		if n == 0 {
			t.Errorf("%s: no record", name)
		}
	}
}

// jsonCorpus returns the records of the files of the FuzzReadJSON corpus
// whose names match pattern, by file name.
func jsonCorpus(tb testing.TB, pattern string) map[string]string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("testdata/fuzz/FuzzReadJSON", pattern))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no %s records in testdata/fuzz/FuzzReadJSON: %v", pattern, err)
	}
	recs := make(map[string]string)
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		header, lit, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
		lit, ok := strings.CutPrefix(lit, "[]byte(")
		lit, ok2 := strings.CutSuffix(lit, ")")
		rec, err := strconv.Unquote(lit)
		if header != "go test fuzz v1" || !ok || !ok2 || err != nil {
			tb.Fatalf("%s: not a corpus file of one []byte: %v", name, err)
		}
		recs[name] = rec
	}
	return recs
}

// TestReadJSONLongLine checks that a line longer than maxJSONLine is an
// error, read no further than the limit, and that shorter lines are not.
func TestReadJSONLongLine(t *testing.T) {
	defer func(n int) { maxJSONLine = n }(maxJSONLine)
	maxJSONLine = 1 << 16
	ok := `{"name":"` + strings.Repeat("x", maxJSONLine-12) + `"}` + "\n"
	if len(ok) != maxJSONLine {
		t.Fatalf("setup: line of %d bytes", len(ok))
	}
	for _, err := range ReadJSON(strings.NewReader(ok + ok)) {
		if err != nil {
			t.Fatalf("line of %d bytes: %v", len(ok), err)
		}
	}
	long := `{"name":"x` + ok[len(`{"name":"`):]
	for tr, err := range ReadJSON(strings.NewReader(long)) {
		if !errors.Is(err, errLineTooLong) {
			t.Errorf("line of %d bytes: trace %v, error %v; want errLineTooLong", len(long), tr, err)
		}
	}

	// An endless line: ReadJSON must give up without reading it all.
	r := &countingReader{r: endless('x')}
	var last error
	for tr, err := range ReadJSON(io.MultiReader(strings.NewReader("{}\n"), r)) {
		if tr == nil {
			last = err
		}
	}
	if !errors.Is(last, errLineTooLong) || !strings.Contains(last.Error(), "line 2") {
		t.Errorf("endless line 2: error %v, want errLineTooLong on line 2", last)
	}
	if r.n > 2*maxJSONLine {
		t.Errorf("read %d bytes of an endless line, limit %d", r.n, maxJSONLine)
	}
}

// TestReadJSONSparseHops checks that sparse hops cannot claim more hops
// than the line has bytes, and that a real sparse record still decodes.
func TestReadJSONSparseHops(t *testing.T) {
	in := `{"flows":[` + strings.Repeat(`{"hops":[{"ttl":255}]},`, 10) + `{"hops":[{"ttl":255}]}]}`
	for tr, err := range ReadJSON(strings.NewReader(in)) {
		if err == nil || !strings.Contains(err.Error(), "hops in all") {
			t.Errorf("%d flows of 255 sparse hops in %d bytes: trace %v, error %v", 11, len(in), tr, err)
		}
	}
	in = `{"flows":[{"path_id":1,"hops":[{"ttl":30,"addr":"10.0.0.1"}]}]}`
	for tr, err := range ReadJSON(strings.NewReader(in)) {
		if err != nil || len(tr.Flows[0].Hops) != 30 {
			t.Errorf("sparse hop at TTL 30: %v", err)
		}
	}
}

type endless byte

func (e endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(e)
	}
	return len(p), nil
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
