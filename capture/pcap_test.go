package capture

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// probePacket is a 30-byte IPv4/UDP probe like the ones traceflow-fast
// sends: 10.0.0.2:33453 -> 10.99.0.1:33452, TTL 3, IP.ID 0x1042.
var probePacket = []byte{
	0x45, 0x00, 0x00, 0x1e, 0x10, 0x42, 0x00, 0x00, 0x03, 0x11, 0x00, 0x00,
	10, 0, 0, 2, 10, 99, 0, 1,
	0x82, 0xad, 0x82, 0xac, 0x00, 0x0a, 0x12, 0x34, 0xab, 0xcd,
}

func readAll(t *testing.T, r io.Reader) (layers.LinkType, []gopacket.CaptureInfo, [][]byte) {
	t.Helper()
	pr, err := pcapgo.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	var cis []gopacket.CaptureInfo
	var pkts [][]byte
	for {
		data, ci, err := pr.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		cis = append(cis, ci)
		pkts = append(pkts, data)
	}
	return pr.LinkType(), cis, pkts
}

func TestPcapWriterRoundTrip(t *testing.T) {
	var b bytes.Buffer
	w, err := NewPcapWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1700000000, 123456789)
	reply := make([]byte, 58)
	copy(reply, []byte{0x45, 0, 0, 58})
	if err := w.WritePacket(t0, probePacket); err != nil {
		t.Fatal(err)
	}
	if err := w.WritePackets(t0.Add(time.Microsecond), [][]byte{probePacket, probePacket}); err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(t0.Add(time.Millisecond+7), reply); err != nil {
		t.Fatal(err)
	}
	if b.Len() > 24 {
		t.Errorf("%d bytes written before Close: packets should be buffered", b.Len())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := w.WritePacket(t0, probePacket); !errors.Is(err, ErrPcapClosed) {
		t.Errorf("write after Close: %v, want ErrPcapClosed", err)
	}

	lt, cis, pkts := readAll(t, &b)
	if lt != layers.LinkTypeRaw {
		t.Errorf("link type %v, want %v", lt, layers.LinkTypeRaw)
	}
	wantTS := []time.Time{t0, t0.Add(time.Microsecond), t0.Add(time.Microsecond), t0.Add(time.Millisecond + 7)}
	if len(pkts) != len(wantTS) {
		t.Fatalf("%d packets, want %d", len(pkts), len(wantTS))
	}
	for i, ci := range cis {
		if !ci.Timestamp.Equal(wantTS[i]) {
			t.Errorf("packet %d: timestamp %v, want %v (nanoseconds kept)", i, ci.Timestamp, wantTS[i])
		}
		if ci.CaptureLength != ci.Length || ci.Length != len(pkts[i]) {
			t.Errorf("packet %d: capture %d length %d data %d", i, ci.CaptureLength, ci.Length, len(pkts[i]))
		}
	}
	if !bytes.Equal(pkts[0], probePacket) || !bytes.Equal(pkts[3], reply) {
		t.Error("packet bytes changed")
	}
	// The link type makes decoders start at the IPv4 header.
	p := gopacket.NewPacket(pkts[0], lt, gopacket.Default)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if ip == nil || udp == nil {
		t.Fatalf("not decoded as IPv4/UDP: %v", p)
	}
	if ip.Id != 0x1042 || ip.TTL != 3 || udp.SrcPort != 33453 || udp.DstPort != 33452 {
		t.Errorf("decoded id %#x ttl %d ports %d->%d", ip.Id, ip.TTL, udp.SrcPort, udp.DstPort)
	}
}

func TestCreatePcap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.pcap")
	w, err := CreatePcap(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(time.Now(), probePacket); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, _, pkts := readAll(t, f); len(pkts) != 1 {
		t.Errorf("%d packets in the file, want 1", len(pkts))
	}
	if _, err := CreatePcap(filepath.Join(t.TempDir(), "no", "such", "dir.pcap")); err == nil {
		t.Error("CreatePcap in a missing directory succeeded")
	}
}

func TestPcapWriterConcurrent(t *testing.T) {
	var b bytes.Buffer
	w, err := NewPcapWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	const per = 500
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				ts := time.Unix(1700000000, int64(g*per+i))
				if g%2 == 0 {
					w.WritePacket(ts, probePacket)
				} else {
					w.WritePackets(ts, [][]byte{probePacket})
				}
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, _, pkts := readAll(t, &b)
	if len(pkts) != 4*per {
		t.Fatalf("%d packets, want %d", len(pkts), 4*per)
	}
	for i, p := range pkts {
		if !bytes.Equal(p, probePacket) {
			t.Fatalf("packet %d interleaved with another", i)
		}
	}
}

type failWriter struct{ n int }

var errDisk = errors.New("disk full")

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errDisk
	}
	f.n--
	return len(p), nil
}

func TestPcapWriterStickyError(t *testing.T) {
	if _, err := NewPcapWriter(&failWriter{}); err != nil {
		t.Fatalf("header is buffered, NewPcapWriter failed early: %v", err)
	}
	w, _ := NewPcapWriter(&failWriter{})
	big := make([]byte, pcapBuffer) // more than the buffer holds: reaches the writer
	big[0] = 0x45
	if err := w.WritePacket(time.Now(), big); !errors.Is(err, errDisk) {
		t.Fatalf("write: %v, want %v", err, errDisk)
	}
	if err := w.WritePacket(time.Now(), probePacket); !errors.Is(err, errDisk) {
		t.Errorf("later write: %v, want the first error", err)
	}
	if err := w.Close(); !errors.Is(err, errDisk) {
		t.Errorf("Close: %v, want the first error", err)
	}
}

func TestPcapWriterDoesNotAllocate(t *testing.T) {
	w, err := NewPcapWriter(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now()
	batch := [][]byte{probePacket, probePacket}
	if n := testing.AllocsPerRun(1000, func() {
		w.WritePacket(ts, probePacket)
		w.WritePackets(ts, batch)
	}); n != 0 {
		t.Errorf("%v allocations per write, want 0", n)
	}
}

func BenchmarkPcapWriter(b *testing.B) {
	w, err := NewPcapWriter(io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	ts := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(probePacket)))
	for b.Loop() {
		w.WritePacket(ts, probePacket)
	}
}
