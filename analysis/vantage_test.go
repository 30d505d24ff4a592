package analysis

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// A trace from a fleet agent (Vantage) names it in the tables' header, the
// DOT source and the Atlas records; one of this host is written as before.
func TestVantage(t *testing.T) {
	local := atlasTrace()
	agent := atlasTrace()
	agent.Vantage = "east"
	write := func(tr *Trace, f func(*bytes.Buffer, *Trace) error) string {
		t.Helper()
		var b bytes.Buffer
		if err := f(&b, tr); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	vert := func(b *bytes.Buffer, tr *Trace) error { return WriteVert(b, tr, Options{}) }
	dot := func(b *bytes.Buffer, tr *Trace) error { return WriteDOT(b, tr, Options{}) }
	group := func(b *bytes.Buffer, tr *Trace) error { return WriteGroupDOT(b, []*Trace{tr, tr}) }
	atlas := func(b *bytes.Buffer, tr *Trace) error { return WriteAtlas(b, tr, AtlasOptions{}) }
	src := addrText(local.Source)
	header := [2]string{"from " + src + ", ", "from " + src + " (agent east), "}
	srcNode := [2]string{`source [shape=ellipse, label="` + src + `"`, `source [shape=ellipse, label="agent east\n` + src + `"`}
	for _, c := range []struct {
		f       func(*bytes.Buffer, *Trace) error
		changes [][2]string // what this host writes, what the agent's trace has instead
	}{
		{vert, [][2]string{header}},
		{dot, [][2]string{header, srcNode}},
		{group, [][2]string{{"traceflow-fast from " + src + " to", "traceflow-fast from " + src + " (agent east) to"}, srcNode}},
		{atlas, [][2]string{{`"prb_id":0,`, `"prb_id":5468732,`}, {`"partial":false}`, `"partial":false,"agent":"east"}`}}},
	} {
		l, v := write(local, c.f), write(agent, c.f)
		back := v
		for _, ch := range c.changes {
			if !strings.Contains(l, ch[0]) || !strings.Contains(v, ch[1]) {
				t.Errorf("this host's output lacks %q, or the agent's %q:\n%s\n%s", ch[0], ch[1], l, v)
			}
			back = strings.ReplaceAll(back, ch[1], ch[0])
		}
		if strings.Contains(l, "east") || back != l {
			t.Errorf("the agent's output differs otherwise:\n%s\nfrom this host's:\n%s", v, l)
		}
	}
	var rec struct {
		PrbID     int `json:"prb_id"`
		Traceflow struct{ Agent string }
	}
	if err := json.Unmarshal([]byte(strings.SplitN(write(agent, atlas), "\n", 2)[0]), &rec); err != nil || rec.Traceflow.Agent != "east" || rec.PrbID != AtlasProbeID("east") {
		t.Errorf("Atlas record %+v, %v", rec, err)
	}
	if AtlasProbeID("") != 0 || AtlasProbeID("east") == AtlasProbeID("west") || AtlasProbeID("east") <= 0 {
		t.Errorf("AtlasProbeID: %d %d %d", AtlasProbeID(""), AtlasProbeID("east"), AtlasProbeID("west"))
	}
}
