package asn

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/gaissmai/bart"
)

// IXPs maps addresses to the IXP peering LAN that holds them. It is safe for
// concurrent lookups.
type IXPs struct {
	table   bart.Table[string]
	entries int
}

// LoadIXPs reads the IXP prefix list at path (see ReadIXPs).
func LoadIXPs(path string) (*IXPs, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("asn: %w", err)
	}
	defer file.Close()
	x, err := ReadIXPs(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return x, nil
}

// ReadIXPs reads a list of IXP peering LAN prefixes, one per line: a prefix
// and the IXP's name, in either order, separated by a tab, a comma or
// spaces; the name may contain spaces ("185.1.0.0/24	Example-IX Berlin").
// Comment lines ("#" or ";") and blank lines are skipped; gzip and bzip2 are
// decompressed.
func ReadIXPs(r io.Reader) (*IXPs, error) {
	r, err := decompress(r)
	if err != nil {
		return nil, err
	}
	x := &IXPs{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		p, name, err := parseIXPLine(line)
		if err != nil {
			return nil, fmt.Errorf("asn: IXP list line %d: %w", n, err)
		}
		x.table.Insert(p.Masked(), name)
		x.entries++
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("asn: %w", err)
	}
	if x.entries == 0 {
		return nil, fmt.Errorf("asn: IXP list: %w: no entries", ErrFormat)
	}
	return x, nil
}

func parseIXPLine(line string) (netip.Prefix, string, error) {
	fields := strings.FieldsFunc(line, func(r rune) bool { return r == '\t' || r == ',' })
	if len(fields) < 2 {
		fields = strings.Fields(line)
	}
	for i, f := range fields {
		p, err := netip.ParsePrefix(strings.TrimSpace(f))
		if err != nil {
			continue
		}
		rest := append(append([]string(nil), fields[:i]...), fields[i+1:]...)
		for j := range rest {
			rest[j] = strings.TrimSpace(rest[j])
		}
		name := strings.Join(strings.Fields(strings.Join(rest, " ")), " ")
		if name == "" {
			return netip.Prefix{}, "", fmt.Errorf("%q: no IXP name", clip(line))
		}
		return p, name, nil
	}
	return netip.Prefix{}, "", fmt.Errorf("%q: want PREFIX NAME", clip(line))
}

// Len returns the number of prefixes read.
func (x *IXPs) Len() int { return x.entries }

// Lookup returns the name of the IXP whose peering LAN holds a.
func (x *IXPs) Lookup(a netip.Addr) (string, bool) {
	if x == nil || !a.IsValid() {
		return "", false
	}
	return x.table.Lookup(a.Unmap())
}
