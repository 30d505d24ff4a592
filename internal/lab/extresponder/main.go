//go:build linux

// Command extresponder makes a lab router answer the UDP probes that expire
// in it with ICMP time-exceeded messages that carry RFC 4884 extensions,
// as label switching routers do: an MPLS label stack (RFC 4950) and the
// information of the interface the probe came in by (RFC 5837). Linux
// routers send no extensions, and the lab kernel has no MPLS.
//
// Run it in the router's namespace, and keep the router from answering
// those probes itself by dropping them before it routes them, e.g.
//
//	nft add table ip ext
//	nft add chain ip ext pre '{ type filter hook prerouting priority -300; }'
//	nft add rule ip ext pre ip ttl 1 udp dport 33452 drop
//	extresponder -iface to-r1 -dport 33452 -labels 16001,16002
//
// A packet socket on -iface sees the probes before netfilter drops them.
// Each probe with TTL 1 and destination port -dport that arrives there is
// answered from the interface's IPv4 address with a time exceeded that
// quotes it (padded to 128 octets, RFC 4884 section 5), then the extension
// structure: the label stack of -labels (top first, TC 0, TTL 1, the last
// one the bottom of the stack) and an incoming-interface object with the
// interface's ifIndex, address, name and MTU. -rfc4884=false leaves the
// length attribute out, as non-compliant routers do.
//
// Once listening it prints a JSON line on standard output with what it
// puts in the interface object: {"ifindex": 103, "addr": "10.1.1.2",
// "name": "to-r1", "mtu": 1500}; it answers until killed.
package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

type ifInfo struct {
	Ifindex int        `json:"ifindex"`
	Addr    netip.Addr `json:"addr"`
	Name    string     `json:"name"`
	MTU     int        `json:"mtu"`
}

func main() {
	iface := flag.String("iface", "", "interface the probes come in by")
	dport := flag.Int("dport", 33452, "UDP destination port of the probes")
	labels := flag.String("labels", "16001,16002", "MPLS labels, top of the stack first")
	compliant := flag.Bool("rfc4884", true, "set the RFC 4884 length attribute")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("extresponder: ")
	if err := run(*iface, uint16(*dport), *labels, *compliant); err != nil {
		log.Fatal(err)
	}
}

func run(name string, dport uint16, labelList string, compliant bool) error {
	var labels []uint32
	for _, s := range strings.Split(labelList, ",") {
		l, err := strconv.ParseUint(s, 10, 20)
		if err != nil {
			return fmt.Errorf("-labels: %w", err)
		}
		labels = append(labels, uint32(l))
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return err
	}
	info := ifInfo{Ifindex: ifi.Index, Name: ifi.Name, MTU: ifi.MTU}
	addrs, err := ifi.Addrs()
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
			info.Addr = p.Addr()
			break
		}
	}
	if !info.Addr.IsValid() {
		return errors.New(name + " has no IPv4 address")
	}

	// ETH_P_IP in network byte order, as packet(7) wants it.
	proto := int(htons(unix.ETH_P_IP))
	rx, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, proto)
	if err != nil {
		return fmt.Errorf("packet socket: %w", err)
	}
	if err := unix.Bind(rx, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index}); err != nil {
		return fmt.Errorf("bind to %s: %w", name, err)
	}
	// IPPROTO_RAW: the replies are whole IP packets (raw(7): IP_HDRINCL).
	tx, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
	if err != nil {
		return fmt.Errorf("raw socket: %w", err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(info); err != nil {
		return err
	}

	ext := extensions(labels, info)
	buf := make([]byte, 65536)
	for {
		n, from, err := unix.Recvfrom(rx, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("receive: %w", err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		p := buf[:n]
		if !expiring(p, dport) {
			continue
		}
		reply := timeExceeded(info.Addr, p, ext, compliant)
		dst := unix.SockaddrInet4{Addr: [4]byte(p[12:16])}
		if err := unix.Sendto(tx, reply, 0, &dst); err != nil {
			log.Printf("send to %v: %v", netip.AddrFrom4(dst.Addr), err)
		}
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// expiring says whether p is an IPv4 UDP datagram to port dport that this
// router would have to answer with a time exceeded: TTL 1, first fragment.
func expiring(p []byte, dport uint16) bool {
	if len(p) < 20 || p[0]>>4 != 4 || p[9] != unix.IPPROTO_UDP || p[8] != 1 {
		return false
	}
	ihl := int(p[0]&0x0f) * 4
	if ihl < 20 || len(p) < ihl+8 || binary.BigEndian.Uint16(p[6:])&0x1fff != 0 {
		return false
	}
	return binary.BigEndian.Uint16(p[ihl+2:]) == dport
}

// extensions returns the RFC 4884 extension structure: its header, an RFC
// 4950 incoming MPLS label stack object and an RFC 5837 incoming interface
// object with ifIndex, IPv4 address, name and MTU.
func extensions(labels []uint32, info ifInfo) []byte {
	// RFC 4884 section 7: version 2, reserved, checksum (set below).
	b := []byte{0x20, 0, 0, 0}

	// RFC 4950 section 7: class 1, c-type 1, a 32-bit entry per label:
	// label (20 bits), TC (3), bottom of stack (1), TTL (8).
	b = binary.BigEndian.AppendUint16(b, uint16(4+4*len(labels)))
	b = append(b, 1, 1)
	for i, l := range labels {
		e := l<<12 | 1 // TC 0, TTL 1
		if i == len(labels)-1 {
			e |= 1 << 8
		}
		b = binary.BigEndian.AppendUint32(b, e)
	}

	// RFC 5837 section 4: class 2; c-type: role 0 (incoming) in bits 0-1,
	// then ifIndex (0x08), IP address (0x04), name (0x02), MTU (0x01).
	// The name sub-object is a length octet that counts itself, a
	// multiple of 4 up to 64, then the name padded with NULs.
	nameLen := (1 + len(info.Name) + 3) / 4 * 4
	obj := binary.BigEndian.AppendUint32(nil, uint32(info.Ifindex))
	obj = binary.BigEndian.AppendUint16(obj, 1) // AFI 1: IPv4
	obj = append(obj, 0, 0)
	obj = append(obj, info.Addr.AsSlice()...)
	obj = append(obj, byte(nameLen))
	obj = append(obj, info.Name...)
	obj = append(obj, make([]byte, nameLen-1-len(info.Name))...)
	obj = binary.BigEndian.AppendUint32(obj, uint32(info.MTU))
	b = binary.BigEndian.AppendUint16(b, uint16(4+len(obj)))
	b = append(b, 2, 0x0f)
	b = append(b, obj...)

	// "The one's complement of the one's complement sum of the data
	// structure, with the checksum field replaced by zero", all of it:
	// header and objects.
	binary.BigEndian.PutUint16(b[2:], checksum(b))
	return b
}

// timeExceeded returns the IPv4 packet of a time exceeded from src that
// answers probe p, with the extension structure ext after a quote of 128
// octets.
func timeExceeded(src netip.Addr, p []byte, ext []byte, compliant bool) []byte {
	quote := make([]byte, 128)
	copy(quote, p)
	icmp := []byte{11, 0, 0, 0, 0, 0, 0, 0}
	if compliant {
		icmp[5] = 128 / 4 // RFC 4884 section 3: the quote's length in 32-bit words
	}
	icmp = append(append(icmp, quote...), ext...)
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))

	ip := make([]byte, 20, 20+len(icmp))
	ip[0], ip[1] = 0x45, 0xc0 // IHL 5; precedence 6, as Linux sends ICMP errors
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(icmp)))
	ip[8], ip[9] = 64, unix.IPPROTO_ICMP
	copy(ip[12:16], src.AsSlice())
	copy(ip[16:20], p[12:16]) // to the probe's source
	binary.BigEndian.PutUint16(ip[10:], checksum(ip))
	return append(ip, icmp...)
}

// checksum is the Internet checksum of RFC 1071.
func checksum(b []byte) uint16 {
	var s uint32
	for ; len(b) >= 2; b = b[2:] {
		s += uint32(b[0])<<8 | uint32(b[1])
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}
