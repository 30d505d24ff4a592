// Package asn maps IP addresses to their origin AS and to IXP peering LANs
// offline, from the tables people already download:
//
//   - pyasn .dat (pyasn_util_convert.py): "PREFIX<TAB>ASN" lines after
//     ";"-comments, e.g. "1.0.0.0/24	13335";
//   - CAIDA Routeviews prefix2as (pfx2as): "ADDR<TAB>LENGTH<TAB>ASN", where a
//     multi-origin prefix lists its origins joined by "_" ("64500_64501") and
//     an AS set joins them by ",";
//   - IPtoASN ip2asn TSV: "START<TAB>END<TAB>ASN<TAB>COUNTRY<TAB>NAME", an
//     address range per line (dotted or, in the -u32 files, as integers);
//     AS 0 marks a range that is not routed.
//
// Files may be gzip- or bzip2-compressed. Lookups are longest-prefix matches
// (github.com/gaissmai/bart); ip2asn ranges are split into prefixes.
//
// IXP peering LANs are usually absent from BGP, so they come from a separate
// list (ReadIXPs): one prefix and the IXP's name per line.
package asn

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/gaissmai/bart"
)

// Format is the layout of an AS table. The zero value is invalid; Auto asks
// Read to detect the format.
type Format int

// Table formats.
const (
	formatInvalid Format = iota
	Auto                 // detect from the first data line
	PyASN                // pyasn .dat
	Pfx2AS               // CAIDA Routeviews prefix2as
	IP2ASN               // IPtoASN ip2asn TSV
)

var formatNames = map[Format]string{Auto: "auto", PyASN: "pyasn", Pfx2AS: "pfx2as", IP2ASN: "ip2asn"}

func (f Format) String() string {
	if s, ok := formatNames[f]; ok {
		return s
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// Formats lists the names ParseFormat accepts.
func Formats() []string { return []string{"auto", "pyasn", "pfx2as", "ip2asn"} }

// ParseFormat returns the Format named s (see Formats).
func ParseFormat(s string) (Format, error) {
	for f, name := range formatNames {
		if strings.EqualFold(s, name) {
			return f, nil
		}
	}
	return formatInvalid, fmt.Errorf("asn: unknown format %q (one of %s)", s, strings.Join(Formats(), ", "))
}

// ErrFormat is returned (wrapped) when a table is not in the format given or
// detected.
var ErrFormat = errors.New("not an AS table")

// DB maps addresses to the origin ASes of their longest matching prefix. It
// is safe for concurrent lookups.
type DB struct {
	table   bart.Table[[]uint32]
	format  Format
	entries int
}

// Load reads the AS table at path (see Read).
func Load(path string, f Format) (*DB, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("asn: %w", err)
	}
	defer file.Close()
	db, err := Read(file, f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return db, nil
}

// Read reads an AS table in format f (Auto: detected from the first data
// line), decompressing gzip and bzip2 transparently. Comment lines (";" or
// "#") and blank lines are skipped; any other line that does not parse is an
// error naming its number. A prefix listed twice gets the origins of both.
func Read(r io.Reader, f Format) (*DB, error) {
	if f == formatInvalid {
		return nil, errors.New("asn: no format given (use Auto to detect it)")
	}
	r, err := decompress(r)
	if err != nil {
		return nil, err
	}
	db := &DB{format: f}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == ';' || line[0] == '#' {
			continue
		}
		if db.format == Auto {
			if db.format = detectLine(line); db.format == formatInvalid {
				return nil, fmt.Errorf("asn: line %d: %w: %q is not pyasn, pfx2as or ip2asn", n, ErrFormat, clip(line))
			}
		}
		if err := db.addLine(line); err != nil {
			return nil, fmt.Errorf("asn: line %d (%s): %w", n, db.format, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("asn: %w", err)
	}
	if db.entries == 0 {
		return nil, fmt.Errorf("asn: %w: no entries", ErrFormat)
	}
	return db, nil
}

// Format returns the format the table was read in (detected or given).
func (db *DB) Format() Format { return db.format }

// Len returns the number of lines read into the table.
func (db *DB) Len() int { return db.entries }

// Lookup returns the origin ASes of the longest prefix holding a, several
// for a multi-origin prefix, or nil when no prefix holds it.
func (db *DB) Lookup(a netip.Addr) []uint32 {
	if db == nil || !a.IsValid() {
		return nil
	}
	origins, _ := db.table.Lookup(a.Unmap())
	return origins
}

// Origin returns the first origin AS of a (see Lookup), 0 when unknown.
func (db *DB) Origin(a netip.Addr) uint32 {
	if o := db.Lookup(a); len(o) > 0 {
		return o[0]
	}
	return 0
}

func (db *DB) insert(p netip.Prefix, origins []uint32) {
	db.table.Modify(p.Masked(), func(old []uint32, ok bool) ([]uint32, bool) {
		for _, o := range origins {
			if !slices.Contains(old, o) {
				old = append(old, o)
			}
		}
		return old, false
	})
}

// detectLine guesses the format from one data line.
func detectLine(line string) Format {
	f := strings.Fields(line)
	switch {
	case len(f) >= 2 && strings.Contains(f[0], "/"):
		if _, err := netip.ParsePrefix(f[0]); err == nil {
			return PyASN
		}
	case len(f) == 3:
		_, aerr := netip.ParseAddr(f[0])
		bits, lerr := strconv.Atoi(f[1])
		if aerr == nil && lerr == nil && bits >= 0 && bits <= 128 {
			return Pfx2AS
		}
	}
	if len(f) >= 3 {
		_, serr := parseRangeAddr(f[0])
		_, eerr := parseRangeAddr(f[1])
		if serr == nil && eerr == nil {
			return IP2ASN
		}
	}
	return formatInvalid
}

func (db *DB) addLine(line string) error {
	switch db.format {
	case PyASN:
		// "1.0.0.0/24	13335"
		f := strings.Fields(line)
		if len(f) < 2 {
			return errors.New("want PREFIX ASN")
		}
		p, err := netip.ParsePrefix(f[0])
		if err != nil {
			return err
		}
		origins, err := parseOrigins(f[1])
		if err != nil {
			return err
		}
		db.insert(p, origins)
	case Pfx2AS:
		// "1.0.0.0	24	13335", multi-origin "64500_64501"
		f := strings.Fields(line)
		if len(f) != 3 {
			return errors.New("want ADDRESS LENGTH ASN")
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil {
			return err
		}
		bits, err := strconv.Atoi(f[1])
		if err != nil {
			return fmt.Errorf("prefix length %q", f[1])
		}
		p, err := a.Prefix(bits)
		if err != nil {
			return err
		}
		origins, err := parseOrigins(f[2])
		if err != nil {
			return err
		}
		db.insert(p, origins)
	case IP2ASN:
		// "1.0.0.0	1.0.0.255	13335	US	CLOUDFLARENET"; the name may
		// contain spaces, so split on tabs when there are any.
		f := strings.Split(line, "\t")
		if len(f) < 3 {
			f = strings.Fields(line)
		}
		if len(f) < 3 {
			return errors.New("want START END ASN [COUNTRY NAME]")
		}
		start, err := parseRangeAddr(strings.TrimSpace(f[0]))
		if err != nil {
			return err
		}
		end, err := parseRangeAddr(strings.TrimSpace(f[1]))
		if err != nil {
			return err
		}
		origins, err := parseOrigins(strings.TrimSpace(f[2]))
		if err != nil {
			return err
		}
		if start.Is4() != end.Is4() || end.Less(start) {
			return fmt.Errorf("bad range %s-%s", start, end)
		}
		if len(origins) == 1 && origins[0] == 0 {
			db.entries++ // "Not routed": counted, not stored
			return nil
		}
		for _, p := range rangePrefixes(start, end) {
			db.insert(p, origins)
		}
	default:
		return fmt.Errorf("format %v", db.format)
	}
	db.entries++
	return nil
}

// parseOrigins reads "64500", "AS64500", "64500_64501" (multi-origin),
// "64500,64501" or "{64500,64501}" (AS set), and asdot "1.10" (RFC 5396).
func parseOrigins(s string) ([]uint32, error) {
	s = strings.Trim(s, "{}")
	var out []uint32
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == '_' || r == ',' }) {
		asn, err := parseASN(part)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, asn) {
			out = append(out, asn)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no AS number in %q", s)
	}
	return out, nil
}

func parseASN(s string) (uint32, error) {
	num := s
	if len(num) > 2 && strings.EqualFold(num[:2], "AS") {
		num = num[2:]
	}
	if hi, lo, ok := strings.Cut(num, "."); ok {
		h, err1 := strconv.ParseUint(hi, 10, 16)
		l, err2 := strconv.ParseUint(lo, 10, 16)
		if err1 != nil || err2 != nil {
			return 0, fmt.Errorf("bad AS number %q", s)
		}
		return uint32(h<<16 | l), nil
	}
	n, err := strconv.ParseUint(num, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("bad AS number %q", s)
	}
	return uint32(n), nil
}

// parseRangeAddr reads an ip2asn range bound: an address, or an IPv4
// address as a decimal integer (ip2asn-v4-u32.tsv).
func parseRangeAddr(s string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("bad address %q", s)
	}
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), nil
}

// rangePrefixes returns the fewest prefixes that cover start..end exactly
// (both of one family, start <= end).
func rangePrefixes(start, end netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for {
		// The shortest prefix that starts at start and ends at or before end.
		var p netip.Prefix
		for bits := 0; bits <= start.BitLen(); bits++ {
			q := netip.PrefixFrom(start, bits)
			if q.Masked().Addr() == start && !end.Less(lastAddr(q)) {
				p = q
				break
			}
		}
		out = append(out, p)
		last := lastAddr(p)
		if last == end {
			return out
		}
		start = last.Next()
	}
}

// lastAddr returns the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := range b {
		if keep := p.Bits() - 8*i; keep < 8 {
			b[i] |= byte(0xff >> max(keep, 0))
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// decompress returns r, or a reader of its content when r starts with the
// gzip or bzip2 magic bytes.
func decompress(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 64*1024)
	magic, _ := br.Peek(3)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("asn: gzip: %w", err)
		}
		return zr, nil
	case bytes.Equal(magic, []byte("BZh")):
		return bzip2.NewReader(br), nil
	}
	return br, nil
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
