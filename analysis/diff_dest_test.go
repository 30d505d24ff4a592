package analysis

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// One destination of a Diff, written alone, is what WriteDiff and
// WriteDiffJSON write for it among others.
func TestDestDiffAlone(t *testing.T) {
	c2 := "10.0.0.1 10.1.3.2 10.2.9.2 10.99.0.1"
	before := []*Trace{pathTrace(t, "10.99.0.1", pA, pB, pC, pD), pathTrace(t, "10.99.0.2", pA)}
	after := []*Trace{pathTrace(t, "10.99.0.1", pA, "10.0.0.1 * 10.2.2.2 10.99.0.1", c2), pathTrace(t, "10.99.0.2", pA)}
	d := DiffTraces(before, after, DiffOptions{})
	style := DiffStyle{Before: "a", After: "b"}

	var all, one bytes.Buffer
	if err := WriteDiff(&all, d, style); err != nil {
		t.Fatal(err)
	}
	for i := range d.Destinations {
		if err := WriteDestDiff(&one, &d.Destinations[i], style); err != nil {
			t.Fatal(err)
		}
	}
	if want := strings.TrimSuffix(all.String(), "1 of 2 destinations changed\n"); one.String() != want || want == all.String() {
		t.Errorf("WriteDestDiff wrote\n%s\nWriteDiff\n%s", one.String(), all.String())
	}
	if !strings.Contains(one.String(), "  - removed path: "+pD+" (path ID 4)\n") {
		t.Errorf("no removed path in\n%s", one.String())
	}

	var whole bytes.Buffer
	if err := WriteDiffJSON(&whole, d, style); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Destinations []json.RawMessage `json:"destinations"`
	}
	if err := json.Unmarshal(whole.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for i := range d.Destinations {
		b, err := json.Marshal(d.Destinations[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, doc.Destinations[i]) {
			t.Errorf("destination %d alone:\n%s\namong others:\n%s", i, b, doc.Destinations[i])
		}
	}
	p, err := json.Marshal(d.Destinations[0].Changed[0].After)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"hops":["10.0.0.1",null,"10.2.2.2","10.99.0.1"],"reached":true,"path_ids":[2]}`; string(p) != want {
		t.Errorf("path %s, want %s", p, want)
	}
}
