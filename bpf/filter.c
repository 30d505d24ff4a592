//go:build ignore

// Socket filter for traceflow-fast's receive socket (AF_PACKET, SOCK_DGRAM):
// offset 0 is the IPv4 header. It keeps the ICMP errors that quote one of this
// run's probes and drops everything else in the kernel.
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
#define IPPROTO_ICMP 1
#define IPPROTO_UDP 17
#define ICMP_DEST_UNREACH 3
#define ICMP_TIME_EXCEEDED 11

// Match keys, set at load time through spec.Variables (filter_linux.go).
// const puts them in .rodata, which the loader freezes, so the verifier knows
// their values; volatile stops clang from folding the zero defaults.
volatile const __u32 SRC;       // quoted IP source address, network byte order
volatile const __u16 TAG;       // quoted IP.ID >> TAG_SHIFT
volatile const __u16 TAG_SHIFT; // probe.TagShift
volatile const __u16 SPORT_MIN; // quoted UDP source port, inclusive range
volatile const __u16 SPORT_MAX;
volatile const __u16 DPORT;     // quoted UDP destination port

static __u16 be16(const __u8 *p) { return (__u16)p[0] << 8 | p[1]; }

SEC("socket")
__u32 traceflow_icmp(struct __sk_buff *skb)
{
	__u8 ip[20];       // outer IPv4 header without options
	__u8 icmp[8 + 20]; // ICMP header + quoted IPv4 header without options
	__u8 udp[4];       // quoted UDP ports
	__u32 ihl, qihl, src;

	if (skb->protocol != htons(ETH_P_IP))
		return DROP;

	// RFC 791 section 3.1: byte 0 version (high nibble) and IHL in 32-bit
	// words (low nibble); bytes 6-7 flags (3 bits) and fragment offset
	// (13 bits); byte 9 protocol.
	if (bpf_skb_load_bytes(skb, 0, ip, sizeof(ip)) < 0)
		return DROP;
	if (ip[0] >> 4 != 4 || ip[9] != IPPROTO_ICMP)
		return DROP;
	if ((ip[6] & 0x1f) | ip[7]) // a later fragment has no ICMP header
		return DROP;
	ihl = (ip[0] & 0x0f) * 4;
	if (ihl < 20)
		return DROP;

	// RFC 792: byte 0 type, byte 1 code, bytes 2-3 checksum, bytes 4-7
	// unused (RFC 4884: byte 5 is the length of the quote), then the
	// "Internet Header + 64 bits of Original Data Datagram" from byte 8.
	if (bpf_skb_load_bytes(skb, ihl, icmp, sizeof(icmp)) < 0)
		return DROP;
	if (icmp[0] != ICMP_TIME_EXCEEDED && icmp[0] != ICMP_DEST_UNREACH)
		return DROP;

	// The quoted IPv4 header (RFC 791 offsets, from icmp[8]): byte 0
	// version/IHL, bytes 4-5 identification, byte 9 protocol, bytes 12-15
	// source address.
	const __u8 *q = &icmp[8];
	if (q[0] >> 4 != 4 || q[9] != IPPROTO_UDP)
		return DROP;
	qihl = (q[0] & 0x0f) * 4;
	if (qihl < 20)
		return DROP;
	__builtin_memcpy(&src, &q[12], sizeof(src));
	if (src != SRC)
		return DROP;
	if (be16(&q[4]) >> TAG_SHIFT != TAG)
		return DROP;

	// RFC 768: bytes 0-1 source port, bytes 2-3 destination port. The quoted
	// UDP header starts after the quoted IP options, if any.
	if (bpf_skb_load_bytes(skb, ihl + 8 + qihl, udp, sizeof(udp)) < 0)
		return DROP;
	__u16 sport = be16(&udp[0]);
	if (sport < SPORT_MIN || sport > SPORT_MAX)
		return DROP;
	if (be16(&udp[2]) != DPORT)
		return DROP;

	return KEEP;
}
