package analysis

import (
	"errors"
	"net/netip"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// jsonHopExtras are the fields of a JSON hop on what its reply said beyond
// the hop, each absent when there is nothing to say:
//
//	"mpls":       the label stack of its RFC 4950 object, top first:
//	              [{"label": 16005, "tc": 0, "s": false, "ttl": 1}, ...]
//	"interfaces": its RFC 5837 objects: [{"role": "incoming",
//	              "ifindex": 7, "addr": "10.1.1.2", "name": "eth0",
//	              "mtu": 1500}] (role "incoming", "sub-ip", "outgoing" or
//	              "next-hop"; the other fields only when the object has
//	              them)
//	"rfc4884":    with "mpls" or "interfaces": whether the reply had an
//	              RFC 4884 length attribute
//	"ext_truncated": the reply carried more labels or interfaces, or a
//	              longer name, than were kept
//	"rewritten":  how the probe the hop quotes differs from what was
//	              sent: ["tos", "length", "dst", "checksum"] (a subset)
//	"quoted_tos": with "tos" rewritten, the TOS byte the hop quoted
type jsonHopExtras struct {
	MPLS         []jsonMPLS      `json:"mpls,omitempty"`
	Interfaces   []jsonInterface `json:"interfaces,omitempty"`
	RFC4884      *bool           `json:"rfc4884,omitempty"`
	ExtTruncated bool            `json:"ext_truncated,omitempty"`
	Rewritten    []string        `json:"rewritten,omitempty"`
	QuotedTOS    *uint8          `json:"quoted_tos,omitempty"`
}

type jsonMPLS struct {
	Label uint32 `json:"label"`
	TC    uint8  `json:"tc"`
	S     bool   `json:"s"`
	TTL   uint8  `json:"ttl"`
}

type jsonInterface struct {
	Role    string      `json:"role"`
	Ifindex uint32      `json:"ifindex,omitempty"`
	Addr    *netip.Addr `json:"addr,omitempty"`
	Name    string      `json:"name,omitempty"`
	MTU     uint32      `json:"mtu,omitempty"`
}

var errIfRole = errors.New(`interface role not "incoming", "sub-ip", "outgoing" or "next-hop"`)

// hop sets the fields of h that x describes.
func (x *jsonHopExtras) hop(h *Hop) error {
	for _, l := range x.MPLS {
		h.MPLS = append(h.MPLS, probe.MPLSLabel(l))
	}
	for _, ji := range x.Interfaces {
		role, ok := parseIfRole(ji.Role)
		if !ok {
			return errIfRole
		}
		i := probe.InterfaceInfo{Role: role, Ifindex: ji.Ifindex, Name: ji.Name, MTU: ji.MTU}
		if ji.Addr != nil {
			i.Addr = *ji.Addr
		}
		h.Interfaces = append(h.Interfaces, i)
	}
	if x.RFC4884 != nil && *x.RFC4884 {
		h.ExtFlags |= probe.ExtRFC4884
	}
	if x.ExtTruncated {
		h.ExtFlags |= probe.ExtTruncated
	}
	for _, n := range x.Rewritten {
		rw, ok := parseRewrite(n)
		if !ok {
			return errors.New("unknown rewrite " + `"` + n + `"`)
		}
		h.Rewrites |= rw
	}
	if x.QuotedTOS != nil && h.Rewrites&probe.RewriteTOS != 0 {
		h.QuotedTOS = *x.QuotedTOS
	}
	return nil
}
