package analysis

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// PathFile is a file of paths to compare a result with: either JSON Lines
// as WriteJSON writes them (a golden file from an earlier run), or an
// expected topology in text, one distinct path per line:
//
//	# diamond4 through r1
//	destination 10.99.0.1
//	10.0.0.1 10.1.1.2 10.2.1.2 10.99.0.1
//	10.0.0.1 10.1.2.2 * 10.99.0.1
//
// A path is its hop addresses from TTL 1 on, separated by spaces, "*" for a
// silent hop; a path that ends at its destination's address reached it.
// "#" starts a comment. A "destination ADDR" line starts the paths of that
// destination; a file without any lists the paths of a single destination
// that the caller names (PathFile.Traces). `scripts/lab.sh describe TOPO`
// prints such a file.
type PathFile struct {
	traces []*Trace // JSON
	groups []pathGroup
}

type pathGroup struct {
	dst   netip.Addr // invalid: the caller's single destination
	paths [][]netip.Addr
}

// ReadPathFile reads a PathFile, telling the formats apart by the first
// line that is neither blank nor a comment ("{" starts JSON).
func ReadPathFile(r io.Reader) (*PathFile, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("analysis: read paths: %w", err)
	}
	for line := range bytes.Lines(b) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if line[0] == '{' {
			return readJSONPathFile(b)
		}
		break
	}
	return readTextPathFile(b)
}

func readJSONPathFile(b []byte) (*PathFile, error) {
	pf := &PathFile{}
	for t, err := range ReadJSON(bytes.NewReader(b)) {
		if err != nil {
			return nil, err
		}
		pf.traces = append(pf.traces, t)
	}
	return pf, nil
}

func readTextPathFile(b []byte) (*PathFile, error) {
	pf := &PathFile{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1024*1024)
	var cur *pathGroup
	seen := map[netip.Addr]bool{}
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if f[0] == "destination" {
			if len(f) != 2 {
				return nil, fmt.Errorf("analysis: paths line %d: want \"destination ADDRESS\"", n)
			}
			dst, err := netip.ParseAddr(f[1])
			if err != nil {
				return nil, fmt.Errorf("analysis: paths line %d: destination %q is not an IP address", n, f[1])
			}
			dst = dst.Unmap()
			if cur != nil && !cur.dst.IsValid() {
				return nil, fmt.Errorf("analysis: paths line %d: paths before the first destination line belong to no destination", n)
			}
			if seen[dst] {
				return nil, fmt.Errorf("analysis: paths line %d: destination %s listed twice", n, dst)
			}
			seen[dst] = true
			pf.groups = append(pf.groups, pathGroup{dst: dst})
			cur = &pf.groups[len(pf.groups)-1]
			continue
		}
		if cur == nil {
			pf.groups = append(pf.groups, pathGroup{})
			cur = &pf.groups[len(pf.groups)-1]
		}
		if len(f) > 255 {
			return nil, fmt.Errorf("analysis: paths line %d: %d hops, more than 255", n, len(f))
		}
		path := make([]netip.Addr, len(f))
		for i, s := range f {
			if s == "*" {
				continue
			}
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("analysis: paths line %d: hop %d %q is neither an IP address nor *", n, i+1, s)
			}
			path[i] = a.Unmap()
		}
		if !slices.ContainsFunc(cur.paths, func(p []netip.Addr) bool { return slices.Equal(p, path) }) {
			cur.paths = append(cur.paths, path)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("analysis: read paths: %w", err)
	}
	if len(pf.groups) == 0 {
		return nil, errors.New("analysis: paths: no paths (want one path per line, hop addresses separated by spaces)")
	}
	for _, g := range pf.groups {
		if len(g.paths) == 0 {
			return nil, fmt.Errorf("analysis: paths: destination %s has no paths", g.dst)
		}
	}
	return pf, nil
}

// NeedsDestination reports whether the file lists paths without a
// destination line, so that Traces needs the destination they lead to.
func (pf *PathFile) NeedsDestination() bool {
	return len(pf.groups) > 0 && !pf.groups[0].dst.IsValid()
}

// Destinations returns the destinations the file names, in file order.
func (pf *PathFile) Destinations() []netip.Addr {
	var out []netip.Addr
	for _, t := range pf.traces {
		if !slices.Contains(out, t.Destination) {
			out = append(out, t.Destination)
		}
	}
	for _, g := range pf.groups {
		if g.dst.IsValid() {
			out = append(out, g.dst)
		}
	}
	return out
}

// Traces returns the file as Traces for DiffTraces. A text file's paths
// become flows without path IDs (PathID 0), reached when their last hop is
// the destination. Paths listed without a destination line lead to dst,
// which must then be valid.
func (pf *PathFile) Traces(dst netip.Addr) ([]*Trace, error) {
	if pf.traces != nil {
		return pf.traces, nil
	}
	out := make([]*Trace, 0, len(pf.groups))
	for _, g := range pf.groups {
		d := g.dst
		if !d.IsValid() {
			if !dst.IsValid() {
				return nil, errors.New("analysis: paths without a destination line, and no single destination to apply them to")
			}
			d = dst
		}
		t := &Trace{Destination: d, Name: d.String(), Protocol: "udp", Flows: make([]Flow, len(g.paths))}
		for i, p := range g.paths {
			f := Flow{Hops: make([]Hop, len(p))}
			for j, a := range p {
				f.Hops[j] = Hop{TTL: j + 1, Addr: a}
			}
			if len(p) > 0 && p[len(p)-1] == d {
				f.Reached, f.ReachedTTL = true, len(p)
			}
			t.Flows[i] = f
		}
		out = append(out, t)
	}
	return out, nil
}

// FormatHops renders a path as its hop addresses separated by spaces, "*"
// for a silent hop: a line of the text PathFile format.
func FormatHops(hops []netip.Addr) string {
	var b strings.Builder
	for i, a := range hops {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a.IsValid() {
			b.WriteString(a.String())
		} else {
			b.WriteByte('*')
		}
	}
	return b.String()
}

// ParseIgnore parses an --ignore-hop value: an address or a prefix.
func ParseIgnore(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an address nor a prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// OpenPathFile reads the PathFile at name, or from stdin when name is "-";
// its errors name the file.
func OpenPathFile(name string, stdin io.Reader) (*PathFile, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	pf, err := ReadPathFile(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return pf, nil
}

// TracesBeside returns the traces of pf (read from the file name), to be
// compared with those of other (read from otherName): paths listed without
// a destination line lead to the single destination of other.
func (pf *PathFile) TracesBeside(name string, other *PathFile, otherName string) ([]*Trace, error) {
	var dst netip.Addr
	if pf.NeedsDestination() {
		dsts := other.Destinations()
		if len(dsts) != 1 {
			return nil, fmt.Errorf("%s lists paths without a \"destination ADDR\" line, and %s names %d destinations, not one", name, otherName, len(dsts))
		}
		dst = dsts[0]
	}
	ts, err := pf.Traces(dst)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return ts, nil
}
