package tracer

import (
	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/probe"
)

// recordExtras hands c what the first answer a to a probe said beyond its
// hop: the rewrites of the probe it quotes and its MPLS labels and
// interface information. Most answers have none, and cost a test.
func recordExtras(c *analysis.Collector, a *probe.Answer) {
	if a.Rewrites == 0 && a.Ext.Empty() {
		return
	}
	var x analysis.ReplyExt
	x.NLabels = uint8(min(int(a.Ext.NLabels), len(x.Labels)))
	for i, l := range a.Ext.Labels[:x.NLabels] {
		x.Labels[i] = analysis.MPLSLabel{Label: l.Label, TC: l.TC, S: l.S, TTL: l.TTL}
	}
	x.NIfs = uint8(min(int(a.Ext.NIfs), len(x.Ifs)))
	for i := range x.Ifs[:x.NIfs] {
		in, out := &a.Ext.Ifs[i], &x.Ifs[i]
		*out = analysis.ReplyInterface{Role: analysis.IfRole(in.Role), Ifindex: in.Ifindex, MTU: in.MTU, Addr: in.Addr}
		out.NameLen = uint8(copy(out.Name[:], in.NameBytes()))
	}
	if a.Ext.Flags&probe.ExtRFC4884 != 0 {
		x.Flags |= analysis.ExtRFC4884
	}
	// The arrays are the same size on both sides; any cut is marked.
	if a.Ext.Flags&probe.ExtTruncated != 0 || x.NLabels < a.Ext.NLabels || x.NIfs < a.Ext.NIfs {
		x.Flags |= analysis.ExtTruncated
	}
	var rw analysis.Rewrites
	for _, m := range [...]struct {
		p probe.Rewrite
		a analysis.Rewrites
	}{
		{probe.RewriteTOS, analysis.RewriteTOS},
		{probe.RewriteLength, analysis.RewriteLength},
		{probe.RewriteDst, analysis.RewriteDst},
		{probe.RewriteChecksum, analysis.RewriteChecksum},
	} {
		if a.Rewrites&m.p != 0 {
			rw |= m.a
		}
	}
	c.Extras(int(a.Path), int(a.TTL), rw, a.QTOS, &x)
}
