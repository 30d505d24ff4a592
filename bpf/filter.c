//go:build ignore

// Socket filters for traceflow-fast's receive socket (AF_PACKET, SOCK_DGRAM),
// where offset 0 is the IP header. traceflow_icmp, for IPv4 runs, keeps the
// ICMP errors that quote one of this run's probes (UDP, TCP or ICMP echo, as
// PROTO says) and, for TCP and ICMP probes, the destination's own answers
// (SYN-ACK or RST, echo reply); traceflow_icmp6, for IPv6 runs (UDP probes),
// keeps the ICMPv6 errors that quote one of this run's probes. Both drop
// everything else in the kernel.
//
// Self-contained on purpose: the kernel's uapi headers include <asm/types.h>,
// which Debian keeps under /usr/include/<host triplet>, out of sight of a
// -target bpf build.

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;

#define SEC(name) __attribute__((section(name), used))

// The leading fields of the kernel's struct __sk_buff (include/uapi/linux/bpf.h).
struct __sk_buff {
	__u32 len;
	__u32 pkt_type;
	__u32 mark;
	__u32 queue_mapping;
	__u32 protocol; // ethertype, network byte order
};

// long bpf_skb_load_bytes(const void *skb, u32 offset, void *to, u32 len):
// fails (< 0) when offset+len is past the end of the packet.
static long (*bpf_skb_load_bytes)(const void *skb, __u32 offset, void *to, __u32 len) = (void *)26;

// A socket filter returns how many bytes to keep (a snap length).
#define DROP 0
#define KEEP 0xffffffff // the whole packet: ICMP extensions follow the quote

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define htons(x) __builtin_bswap16(x)
#else
#define htons(x) (x)
#endif

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_ICMPV6 58
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_TIME_EXCEED 3
#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

// Match keys, set at load time through spec.Variables (filter_linux.go).
// const puts them in .rodata, which the loader freezes, so the verifier knows
// their values (and prunes the branches of the other protocols); volatile
// stops clang from folding the zero defaults.
volatile const __u8 PROTO;      // probe protocol: IPPROTO_UDP, IPPROTO_TCP or IPPROTO_ICMP
volatile const __u32 SRC;       // our (quoted) IP source address, network byte order
volatile const __u32 SRC6[4];   // our (quoted) IPv6 source address, network byte order
volatile const __u16 TAG;       // run tag: quoted IP.ID >> TAG_SHIFT
volatile const __u16 TAG_SHIFT; // probe.TagShift
volatile const __u16 SPORT_MIN; // our source ports (ICMP: echo identifiers), inclusive range
volatile const __u16 SPORT_MAX;
volatile const __u16 DPORT;     // UDP or TCP destination port

static __u16 be16(const __u8 *p) { return (__u16)p[0] << 8 | p[1]; }
static __u32 be32(const __u8 *p) { return (__u32)be16(p) << 16 | be16(p + 2); }

static int our_port(__u16 port) { return port >= SPORT_MIN && port <= SPORT_MAX; }

// The run tag of a probe's IP.ID, or of the same 16 bits carried in its
// TCP sequence number or ICMP sequence number.
static int our_tag(__u16 id) { return id >> TAG_SHIFT == TAG; }

// A direct reply goes to our source address.
static int to_us(const __u8 *ip)
{
	__u32 dst;
	__builtin_memcpy(&dst, &ip[16], sizeof(dst));
	return dst == SRC;
}

// tcp_reply keeps the destination's answer to a TCP SYN probe: a SYN-ACK
// or an RST with ACK, from our destination port to one of our source
// ports, acknowledging a sequence number whose low half holds our tag.
static __u32 tcp_reply(struct __sk_buff *skb, const __u8 *ip, __u32 ihl)
{
	__u8 tcp[20]; // RFC 9293 section 3.1: the header without options

	if (!to_us(ip))
		return DROP;
	if (bpf_skb_load_bytes(skb, ihl, tcp, sizeof(tcp)) < 0)
		return DROP;
	// Bytes 0-1 source port, 2-3 destination port, 8-11 acknowledgment
	// number, 13 flags.
	if (be16(&tcp[0]) != DPORT || !our_port(be16(&tcp[2])))
		return DROP;
	if (!(tcp[13] & TCP_ACK) || !(tcp[13] & (TCP_SYN | TCP_RST)))
		return DROP;
	if (!our_tag((__u16)(be32(&tcp[8]) - 1)))
		return DROP;
	return KEEP;
}

SEC("socket")
__u32 traceflow_icmp(struct __sk_buff *skb)
{
	__u8 ip[20];   // outer IPv4 header without options
	__u8 icmp[8];  // ICMP header
	__u8 q[20];    // quoted IPv4 header without options
	__u8 l4[6];    // the start of the quoted UDP, TCP or ICMP header
	__u32 ihl, qihl, src;

	if (skb->protocol != htons(ETH_P_IP))
		return DROP;

	// RFC 791 section 3.1: byte 0 version (high nibble) and IHL in 32-bit
	// words (low nibble); bytes 6-7 flags (3 bits) and fragment offset
	// (13 bits); byte 9 protocol; bytes 16-19 destination address.
	if (bpf_skb_load_bytes(skb, 0, ip, sizeof(ip)) < 0)
		return DROP;
	if (ip[0] >> 4 != 4)
		return DROP;
	if ((ip[6] & 0x1f) | ip[7]) // a later fragment has no transport header
		return DROP;
	ihl = (ip[0] & 0x0f) * 4;
	if (ihl < 20)
		return DROP;
	if (PROTO == IPPROTO_TCP && ip[9] == IPPROTO_TCP)
		return tcp_reply(skb, ip, ihl);
	if (ip[9] != IPPROTO_ICMP)
		return DROP;

	// RFC 792: byte 0 type, byte 1 code, bytes 2-3 checksum, then for an
	// error 4 bytes unused (RFC 4884: byte 5 is the length of the quote)
	// and the "Internet Header + 64 bits of Original Data Datagram" from
	// byte 8; for an echo reply, identifier (4-5) and sequence number (6-7).
	if (bpf_skb_load_bytes(skb, ihl, icmp, sizeof(icmp)) < 0)
		return DROP;
	if (PROTO == IPPROTO_ICMP && icmp[0] == ICMP_ECHOREPLY) {
		if (!to_us(ip) || !our_port(be16(&icmp[4])) || !our_tag(be16(&icmp[6])))
			return DROP;
		return KEEP;
	}
	if (icmp[0] != ICMP_TIME_EXCEEDED && icmp[0] != ICMP_DEST_UNREACH)
		return DROP;

	// The quoted IPv4 header (RFC 791 offsets): byte 0 version/IHL, bytes
	// 4-5 identification, byte 9 protocol, bytes 12-15 source address.
	if (bpf_skb_load_bytes(skb, ihl + 8, q, sizeof(q)) < 0)
		return DROP;
	if (q[0] >> 4 != 4 || q[9] != PROTO)
		return DROP;
	qihl = (q[0] & 0x0f) * 4;
	if (qihl < 20)
		return DROP;
	__builtin_memcpy(&src, &q[12], sizeof(src));
	if (src != SRC)
		return DROP;
	if (!our_tag(be16(&q[4])))
		return DROP;

	// The quoted transport header starts after the quoted IP options, if
	// any. ICMP (RFC 792): byte 0 type, bytes 4-5 identifier. UDP (RFC
	// 768) and TCP: bytes 0-1 source port, bytes 2-3 destination port.
	if (PROTO == IPPROTO_ICMP) {
		if (bpf_skb_load_bytes(skb, ihl + 8 + qihl, l4, 6) < 0)
			return DROP;
		if (l4[0] != ICMP_ECHO || !our_port(be16(&l4[4])))
			return DROP;
		return KEEP;
	}
	if (bpf_skb_load_bytes(skb, ihl + 8 + qihl, l4, 4) < 0)
		return DROP;
	if (!our_port(be16(&l4[0])) || be16(&l4[2]) != DPORT)
		return DROP;

	return KEEP;
}

// traceflow_icmp6 keeps, for an IPv6 run (UDP probes, see package probe),
// the ICMPv6 time exceeded and destination unreachable messages that quote
// one of its probes: an IPv6 header from our source address with next header
// UDP, a source port in the run's range, the run's destination port, and
// the run tag in the first two bytes of the UDP payload. An ICMPv6 message
// behind IPv6 extension headers is dropped: the outer next header must be
// ICMPv6 itself (routers send their errors without extension headers).
SEC("socket")
__u32 traceflow_icmp6(struct __sk_buff *skb)
{
	__u8 ip6[40]; // outer IPv6 header
	__u8 icmp[8]; // ICMPv6 header
	__u8 q[40];   // quoted IPv6 header
	__u8 l4[10];  // quoted UDP header and the payload's tag word
	__u32 src[4];

	if (skb->protocol != htons(ETH_P_IPV6))
		return DROP;

	// RFC 8200 section 3: byte 0 version (high nibble), byte 6 next
	// header, bytes 8-23 source address.
	if (bpf_skb_load_bytes(skb, 0, ip6, sizeof(ip6)) < 0)
		return DROP;
	if (ip6[0] >> 4 != 6 || ip6[6] != IPPROTO_ICMPV6)
		return DROP;

	// RFC 4443: byte 0 type, byte 1 code, bytes 2-3 checksum, 4 bytes
	// unused (RFC 4884: byte 4 is the length of the quote), then as much
	// of the invoking packet as fits.
	if (bpf_skb_load_bytes(skb, 40, icmp, sizeof(icmp)) < 0)
		return DROP;
	if (icmp[0] != ICMPV6_TIME_EXCEED && icmp[0] != ICMPV6_DEST_UNREACH)
		return DROP;

	if (bpf_skb_load_bytes(skb, 40 + 8, q, sizeof(q)) < 0)
		return DROP;
	if (q[0] >> 4 != 6 || q[6] != IPPROTO_UDP)
		return DROP;
	__builtin_memcpy(src, &q[8], sizeof(src));
	if (src[0] != SRC6[0] || src[1] != SRC6[1] || src[2] != SRC6[2] || src[3] != SRC6[3])
		return DROP;

	// RFC 768: bytes 0-1 source port, 2-3 destination port; then our
	// payload: bytes 8-9 the run tag and TTL.
	if (bpf_skb_load_bytes(skb, 40 + 8 + 40, l4, sizeof(l4)) < 0)
		return DROP;
	if (!our_port(be16(&l4[0])) || be16(&l4[2]) != DPORT)
		return DROP;
	if (!our_tag(be16(&l4[8])))
		return DROP;

	return KEEP;
}
