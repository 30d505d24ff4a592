"""Builds traceflow-fast's probes and the replies they provoke with scapy.

Reads one JSON case a line from the file named by argv[1]:

  {"proto": "udp" | "tcp" | "icmp", "src": "...", "dst": "...", "rtr": "...",
   "tos": T, "tag": G, "ttl": L, "sport": P, "dport": D, "clock": C,
   "srvseq": S}

and prints, for each, one JSON line:

  {"probe": HEX, "replies": [[KIND, HEX], ...]}

The probe is built from the fields as the package documentation lays it out,
independently of the Go encoder: IP.ID = tag << 6 | (ttl - 1); UDP: the
checksum is the clock and two payload bytes make it valid; TCP: a SYN whose
sequence number is clock << 16 | IP.ID; ICMP: an echo request with
identifier sport, sequence number IP.ID, the checksum the message has with a
zero sequence number and payload, and a payload of the clock and the word
that keeps that checksum valid. scapy computes every checksum.

The replies are what routers and the destination send back, built with
scapy's own layers (IPerror and UDPerror/TCPerror/ICMPerror for quotes).
Kinds ending in "!" are near misses the decoder must refuse or not match.
"""

import json
import sys

from scapy.layers.inet import (ICMP, IP, TCP, UDP, ICMPerror, IPerror,
                               TCPerror, UDPerror, in4_chksum)
from scapy.packet import Raw
from scapy.utils import checksum


def word(v):
    return v.to_bytes(2, "big")


def ipid(c):
    return c["tag"] << 6 | (c["ttl"] - 1)


def icmp_fixed_checksum(c):
    # The checksum of the echo request with sequence number and payload 0.
    return ICMP(bytes(ICMP(type=8, code=0, id=c["sport"], seq=0) / Raw(b"\0" * 4))).chksum


def transport(c, err):
    """The probe's transport layer (as a quote's layers when err)."""
    if c["proto"] == "tcp":
        cls = TCPerror if err else TCP
        return cls(sport=c["sport"], dport=c["dport"], seq=c["clock"] << 16 | ipid(c),
                   ack=0, dataofs=5, reserved=0, flags="S", window=65535, urgptr=0)
    if c["proto"] == "icmp":
        fixed = icmp_fixed_checksum(c)
        seq = ipid(c)
        # The payload's last word makes the message sum to 0xffff with
        # the fixed checksum in place: checksum() of the message with
        # that word zero is exactly that word.
        head = bytes(ICMP(type=8, code=0, chksum=fixed, id=c["sport"], seq=seq) / Raw(word(c["clock"]) + b"\0\0"))
        pad = checksum(head)
        cls = ICMPerror if err else ICMP
        return cls(type=8, code=0, chksum=fixed, id=c["sport"], seq=seq) / Raw(word(c["clock"]) + word(pad))
    # UDP: the clock is the checksum; two payload bytes make it valid.
    zero = IP(src=c["src"], dst=c["dst"], proto=17) / UDP(sport=c["sport"], dport=c["dport"], len=10, chksum=c["clock"]) / Raw(b"\0\0")
    pad = in4_chksum(17, zero, bytes(zero[UDP]))
    cls = UDPerror if err else UDP
    return cls(sport=c["sport"], dport=c["dport"], len=10, chksum=c["clock"]) / Raw(word(pad))


PROTO = {"udp": 17, "tcp": 6, "icmp": 1}


def probe(c):
    return IP(version=4, ihl=5, tos=c["tos"], id=ipid(c), flags=0, frag=0, ttl=c["ttl"],
              proto=PROTO[c["proto"]], src=c["src"], dst=c["dst"]) / transport(c, False)


def quoted(c, src=None):
    """The probe as a router quotes it: arriving with TTL 1."""
    q = IPerror(version=4, ihl=5, tos=c["tos"], id=ipid(c), flags=0, frag=0, ttl=1,
                proto=PROTO[c["proto"]], src=src or c["src"], dst=c["dst"]) / transport(c, True)
    return bytes(q)


def icmp_error(frm, c, typ, code, quote):
    return bytes(IP(src=frm, dst=c["src"], ttl=250) / ICMP(type=typ, code=code) / Raw(quote))


def replies(c):
    out = []
    q = quoted(c)
    out.append(["time exceeded", icmp_error(c["rtr"], c, 11, 0, q)])
    out.append(["time exceeded, 28 bytes", icmp_error(c["rtr"], c, 11, 0, q[:28])])
    out.append(["host unreachable", icmp_error(c["rtr"], c, 3, 1, q)])
    out.append(["port unreachable", icmp_error(c["dst"], c, 3, 3, q)])
    out.append(["time exceeded, other source!", icmp_error(c["rtr"], c, 11, 0, quoted(c, "192.0.2.99"))])
    seq = c["clock"] << 16 | ipid(c)
    back = IP(src=c["dst"], dst=c["src"], ttl=61)
    if c["proto"] == "tcp":
        def seg(flags, ack, sport=c["dport"], dport=c["sport"], **kw):
            return bytes(back / TCP(sport=sport, dport=dport, seq=c["srvseq"], ack=ack & 0xffffffff, flags=flags, **kw))
        out.append(["syn-ack", seg("SA", seq + 1, window=64240,
                                   options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)])])
        out.append(["rst-ack", bytes(back / TCP(sport=c["dport"], dport=c["sport"], seq=0, ack=(seq + 1) & 0xffffffff, flags="RA", window=0))])
        out.append(["syn without ack!", seg("S", seq + 1)])
        out.append(["ack only!", seg("A", seq + 1)])
        out.append(["fin-ack!", seg("FA", seq + 1)])
        out.append(["rst without ack!", seg("R", seq + 1)])
        out.append(["other port!", seg("SA", seq + 1, sport=c["dport"] ^ 1)])
        out.append(["other tag!", seg("SA", (seq ^ 1 << 6) + 1)])
    if c["proto"] == "icmp":
        echo = transport(c, False)
        payload = bytes(echo[Raw])
        out.append(["echo reply", bytes(back / ICMP(type=0, code=0, id=c["sport"], seq=ipid(c)) / Raw(payload))])
        out.append(["echo reply, no payload", bytes(back / ICMP(type=0, code=0, id=c["sport"], seq=ipid(c)))])
        out.append(["echo request!", bytes(back / ICMP(type=8, code=0, id=c["sport"], seq=ipid(c)) / Raw(payload))])
        out.append(["echo reply, other identifier!", bytes(back / ICMP(type=0, code=0, id=c["sport"] ^ 0x100, seq=ipid(c)) / Raw(payload))])
        out.append(["echo reply, other tag!", bytes(back / ICMP(type=0, code=0, id=c["sport"], seq=ipid(c) ^ 1 << 6) / Raw(payload))])
        # A quote of an echo reply, not of our request.
        qr = bytes(IPerror(tos=c["tos"], id=ipid(c), flags=0, ttl=1, proto=1, src=c["src"], dst=c["dst"]) /
                   ICMPerror(type=0, code=0, id=c["sport"], seq=ipid(c)) / Raw(payload))
        out.append(["time exceeded quoting an echo reply!", icmp_error(c["rtr"], c, 11, 0, qr)])
    return out


def main():
    for line in open(sys.argv[1]):
        c = json.loads(line)
        p = probe(c)
        # scapy's view of its own packet: valid checksums everywhere.
        again = IP(bytes(p))
        del again.chksum
        del again.payload.chksum
        if bytes(again) != bytes(p):
            raise SystemExit("scapy disagrees with itself on %r" % c)
        print(json.dumps({"probe": bytes(p).hex(),
                          "replies": [[k, v.hex()] for k, v in replies(c)]}))


main()
