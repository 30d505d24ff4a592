package capture

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// PcapLinkType is the link type of the files PcapWriter writes: packets
// start at their IP header (IPv4 or IPv6), as the probes are built and as the receive
// socket delivers the replies. LINKTYPE_RAW (101) is "raw IP; the packet
// begins with an IPv4 or IPv6 header" (tcpdump.org/linktypes.html); every
// libpcap and Wireshark version reads it, where LINKTYPE_IPV4 (228) needs
// a newer one.
const PcapLinkType = layers.LinkTypeRaw

// ErrPcapClosed is returned by writes to a closed PcapWriter.
var ErrPcapClosed = errors.New("pcap: writer closed")

// pcapSnaplen is the snapshot length written in the file header: no packet
// is ever cut short.
const pcapSnaplen = 65535

// pcapBuffer is the size of the write buffer in front of the file.
const pcapBuffer = 64 << 10

// PcapWriter writes IP packets with their timestamps to a pcap file
// (libpcap format 2.4, nanosecond timestamps, PcapLinkType). It is safe for
// concurrent use: the sender and the receiver write through one writer.
// Writes are buffered; Close flushes them. The first write error is kept
// and returned by every later call.
type PcapWriter struct {
	mu     sync.Mutex
	buf    *bufio.Writer
	w      *pcapgo.Writer
	closer io.Closer // the file CreatePcap opened, or nil
	ci     gopacket.CaptureInfo
	err    error
	closed bool
}

// NewPcapWriter writes the pcap file header to w and returns a writer for
// the packets. Close flushes the buffer but does not close w.
func NewPcapWriter(w io.Writer) (*PcapWriter, error) {
	buf := bufio.NewWriterSize(w, pcapBuffer)
	pw := pcapgo.NewWriterNanos(buf)
	if err := pw.WriteFileHeader(pcapSnaplen, PcapLinkType); err != nil {
		return nil, fmt.Errorf("pcap: write header: %w", err)
	}
	return &PcapWriter{buf: buf, w: pw}, nil
}

// CreatePcap creates (or truncates) the file at path and returns a
// PcapWriter on it; Close flushes and closes the file.
func CreatePcap(path string) (*PcapWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err // an *os.PathError: "open PATH: ..."
	}
	p, err := NewPcapWriter(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	p.closer = f
	return p, nil
}

// WritePacket appends one packet, pkt starting at its IP header, captured
// at ts. It does not allocate and does not keep pkt.
func (p *PcapWriter) WritePacket(ts time.Time, pkt []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.write(ts, pkt)
}

// WritePackets appends every packet of pkts, all captured at ts (a batch
// handed to the sender at once), under one lock.
func (p *PcapWriter) WritePackets(ts time.Time, pkts [][]byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pkt := range pkts {
		if err := p.write(ts, pkt); err != nil {
			return err
		}
	}
	return nil
}

func (p *PcapWriter) write(ts time.Time, pkt []byte) error {
	if p.err != nil {
		return p.err
	}
	if p.closed {
		return ErrPcapClosed
	}
	n := min(len(pkt), pcapSnaplen)
	p.ci.Timestamp = ts
	p.ci.CaptureLength = n
	p.ci.Length = len(pkt)
	if err := p.w.WritePacket(p.ci, pkt[:n]); err != nil {
		p.err = fmt.Errorf("pcap: %w", err)
		return p.err
	}
	return nil
}

// Flush writes the buffered packets out.
func (p *PcapWriter) Flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flush()
}

func (p *PcapWriter) flush() error {
	if p.err != nil {
		return p.err
	}
	if err := p.buf.Flush(); err != nil {
		p.err = fmt.Errorf("pcap: %w", err)
	}
	return p.err
}

// Close flushes the buffered packets and, for a writer from CreatePcap,
// closes the file. Later writes fail; a second Close returns nil.
func (p *PcapWriter) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	err := p.flush()
	if p.closer != nil {
		if cerr := p.closer.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("pcap: %w", cerr)
		}
	}
	return err
}
