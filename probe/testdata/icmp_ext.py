"""Builds ICMP time-exceeded messages with RFC 4884 extensions using scapy.

Reads one JSON case a line from the file named by argv[1] and prints, for
each, the IPv4 packet in hex. A case:

  {"src": "...", "dst": "...", "quote": HEX, "pad": N, "length": WORDS,
   "sum": "full" | "zero" | "bad" | "header",
   "objs": [{"mpls": [[label, tc, s, ttl], ...]},
            {"if": {"role": R, "ifindex": I?, "afi": 1|2?, "ip": "..."?,
                    "name": HEX?, "mtu": M?}},
            {"raw": {"class": C, "ctype": T, "payload": HEX}}]}

The quote is padded with zeros to "pad" octets; "length" is the RFC 4884
length attribute (0 for a non-compliant sender). scapy 2.5 computes the
extension checksum over the 4-byte header only; "full" recomputes it over
the header and the objects, as RFC 4884 section 7 says.
"""

import json
import sys

from scapy.contrib.icmp_extensions import (ICMPExtensionHeader,
                                           ICMPExtensionInterfaceInformation,
                                           ICMPExtensionMPLS,
                                           ICMPExtensionObject)
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import ICMP, IP, checksum
from scapy.packet import Raw


def mpls(stack):
    return ICMPExtensionMPLS(stack=[MPLS(label=l, cos=tc, s=s, ttl=ttl)
                                    for l, tc, s, ttl in stack])


def interface(o):
    f = {"interface_role": o["role"]}
    if o.get("ifindex") is not None:
        f.update(has_ifindex=1, ifindex=o["ifindex"])
    if o.get("ip") is not None:
        f.update(has_ipaddr=1, afi=o["afi"])
        f["ip4" if o["afi"] == 1 else "ip6"] = o["ip"]
    if o.get("name") is not None:
        name = bytes.fromhex(o["name"])
        # RFC 5837: the length octet counts itself and the NUL padding up
        # to a multiple of 4 (scapy's default counts only the name).
        n = (1 + len(name) + 3) // 4 * 4
        f.update(has_ifname=1, ifname_len=n, ifname=name + b"\0" * (n - 1 - len(name)))
    if o.get("mtu") is not None:
        f.update(has_mtu=1, mtu=o["mtu"])
    return ICMPExtensionInterfaceInformation(**f)


def raw(o):
    return ICMPExtensionObject(classnum=o["class"], classtype=o["ctype"]) / Raw(bytes.fromhex(o["payload"]))


def extension(objs, how):
    # Each object is built on its own: stacked as scapy layers, an
    # object's length would count the objects after it.
    body = b"".join(bytes(mpls(o["mpls"]) if "mpls" in o else
                          interface(o["if"]) if "if" in o else
                          raw(o["raw"])) for o in objs)

    def build(sum):
        return bytes(ICMPExtensionHeader(chksum=sum) / Raw(body))

    if how == "header":
        return build(None)
    if how == "zero":
        return build(0)
    s = checksum(build(0))
    if how == "bad":
        s ^= 0x0100
    return build(s)


for line in open(sys.argv[1]):
    c = json.loads(line)
    quote = bytes.fromhex(c["quote"])
    quote += b"\0" * (c["pad"] - len(quote))
    pkt = (IP(src=c["src"], dst=c["dst"], ttl=250) /
           ICMP(type=11, code=0, length=c["length"]) /
           Raw(quote + extension(c["objs"], c["sum"])))
    print(bytes(pkt).hex())
