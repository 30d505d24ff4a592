package asn

import (
	"bytes"
	"compress/gzip"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func load(t *testing.T, name string, f Format) *DB {
	t.Helper()
	db, err := Load(filepath.Join("testdata", name), f)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// The prefix tables hold the same documentation prefixes: 192.0.2.0/24
// AS64500, 198.51.100.0/24 AS64501 with its upper half /25 AS64502,
// 203.0.113.0/24 multi-origin AS64503+AS64504 with 203.0.113.64/26 an AS set
// {64505,64506}, and 2001:db8::/32 AS64510.
func TestPrefixFormats(t *testing.T) {
	for _, tc := range []struct {
		file string
		want Format
	}{
		{"small.pyasn.dat", PyASN},
		{"small.pfx2as", Pfx2AS},
		{"small.pfx2as.bz2", Pfx2AS},
	} {
		t.Run(tc.file, func(t *testing.T) {
			for _, f := range []Format{Auto, tc.want} {
				db := load(t, tc.file, f)
				if db.Format() != tc.want || db.Len() != 6 {
					t.Fatalf("format %v, %d entries; want %v, 6", db.Format(), db.Len(), tc.want)
				}
				for addr, want := range map[string][]uint32{
					"192.0.2.1":      {64500},
					"198.51.100.1":   {64501},
					"198.51.100.200": {64502}, // longest prefix
					"198.51.100.127": {64501},
					"203.0.113.1":    {64503, 64504}, // multi-origin
					"203.0.113.70":   {64505, 64506}, // AS set
					"2001:db8::1":    {64510},
					"192.0.3.1":      nil,
					"10.0.0.1":       nil,
				} {
					a := netip.MustParseAddr(addr)
					if got := db.Lookup(a); !slices.Equal(got, want) {
						t.Errorf("Lookup(%s) = %v, want %v", addr, got, want)
					}
					var first uint32
					if len(want) > 0 {
						first = want[0]
					}
					if got := db.Origin(a); got != first {
						t.Errorf("Origin(%s) = %d, want %d", addr, got, first)
					}
				}
			}
		})
	}
}

func TestIP2ASN(t *testing.T) {
	for _, file := range []string{"small.ip2asn.tsv", "small.ip2asn-v4-u32.tsv"} {
		t.Run(file, func(t *testing.T) {
			db := load(t, file, Auto)
			if db.Format() != IP2ASN {
				t.Fatalf("detected %v", db.Format())
			}
			for addr, want := range map[string]uint32{
				"192.0.2.0":        64500,
				"192.0.2.255":      64500,
				"198.51.100.127":   64501,
				"198.51.100.128":   64502,
				"198.51.101.1":     0, // "Not routed"
				"203.0.113.4":      0,
				"203.0.113.5":      64503,
				"203.0.113.13":     64503,
				"203.0.113.20":     64503,
				"203.0.113.21":     0,
				"::ffff:192.0.2.9": 64500, // IPv4-mapped
			} {
				if got := db.Origin(netip.MustParseAddr(addr)); got != want {
					t.Errorf("Origin(%s) = %d, want %d", addr, got, want)
				}
			}
		})
	}
	if got := load(t, "small.ip2asn.tsv", IP2ASN).Origin(netip.MustParseAddr("2001:db8:1::1")); got != 64510 {
		t.Errorf("IPv6 range: %d", got)
	}
}

func TestRangePrefixes(t *testing.T) {
	for _, tc := range []struct {
		start, end string
		want       []string
	}{
		{"203.0.113.5", "203.0.113.20", []string{"203.0.113.5/32", "203.0.113.6/31", "203.0.113.8/29", "203.0.113.16/30", "203.0.113.20/32"}},
		{"0.0.0.0", "255.255.255.255", []string{"0.0.0.0/0"}},
		{"10.0.0.0", "10.0.1.255", []string{"10.0.0.0/23"}},
		{"10.0.0.7", "10.0.0.7", []string{"10.0.0.7/32"}},
		{"2001:db8::", "2001:db8::1:0", []string{"2001:db8::/112", "2001:db8::1:0/128"}},
	} {
		var got []string
		for _, p := range rangePrefixes(netip.MustParseAddr(tc.start), netip.MustParseAddr(tc.end)) {
			got = append(got, p.String())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s-%s: %q, want %q", tc.start, tc.end, got, tc.want)
		}
	}
}

func TestGzip(t *testing.T) {
	raw, err := os.ReadFile("testdata/small.pyasn.dat")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(raw)
	zw.Close()
	db, err := Read(&b, Auto)
	if err != nil {
		t.Fatal(err)
	}
	if db.Format() != PyASN || db.Origin(netip.MustParseAddr("192.0.2.1")) != 64500 {
		t.Errorf("format %v", db.Format())
	}
}

func TestReadErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		f    Format
		want string
	}{
		{"", Auto, "no entries"},
		{"; comments only\n", Auto, "no entries"},
		{"hello world\n", Auto, "line 1: not an AS table"},
		{"192.0.2.0/24\t64500\n192.0.3.0/24\tAS-x\n", Auto, `line 2 (pyasn): bad AS number "AS-x"`},
		{"192.0.2.0\t24\t64500\n", PyASN, "line 1 (pyasn)"},
		{"192.0.2.0/24\t64500\n", Pfx2AS, "line 1 (pfx2as): want ADDRESS LENGTH ASN"},
		{"192.0.2.0\t33\t64500\n", Pfx2AS, "line 1 (pfx2as)"},
		{"192.0.2.9\t192.0.2.1\t64500\tZZ\tX\n", IP2ASN, "bad range"},
		{"192.0.2.0\t24\t99999999999\n", Auto, "bad AS number"},
	} {
		_, err := Read(strings.NewReader(tc.in), tc.f)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q as %v: error %v, want %q", tc.in, tc.f, err, tc.want)
		}
	}
	if _, err := Read(strings.NewReader("hello\n"), Auto); !errors.Is(err, ErrFormat) {
		t.Errorf("not ErrFormat: %v", err)
	}
	if _, err := Read(strings.NewReader("192.0.2.0/24 1\n"), Format(0)); err == nil {
		t.Error("zero Format accepted")
	}
	if _, err := Load("testdata/no-such-file", Auto); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestParseOrigins(t *testing.T) {
	for in, want := range map[string][]uint32{
		"64500":         {64500},
		"AS64500":       {64500},
		"64500_64501":   {64500, 64501},
		"64500,64501":   {64500, 64501},
		"{64500,64501}": {64500, 64501},
		"64500_64500":   {64500},
		"1.10":          {65546}, // asdot
		"4200000000":    {4200000000},
	} {
		if got, err := parseOrigins(in); err != nil || !slices.Equal(got, want) {
			t.Errorf("parseOrigins(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "_", "x", "4294967296", "1.70000"} {
		if got, err := parseOrigins(in); err == nil {
			t.Errorf("parseOrigins(%q) = %v, no error", in, got)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for _, name := range Formats() {
		f, err := ParseFormat(name)
		if err != nil || f.String() != name {
			t.Errorf("ParseFormat(%q) = %v, %v", name, f, err)
		}
	}
	if f, err := ParseFormat("PFX2AS"); err != nil || f != Pfx2AS {
		t.Errorf("case: %v %v", f, err)
	}
	if _, err := ParseFormat("mrt"); err == nil || !strings.Contains(err.Error(), "auto, pyasn, pfx2as, ip2asn") {
		t.Errorf("ParseFormat(mrt): %v", err)
	}
}

func TestIXPs(t *testing.T) {
	x, err := LoadIXPs("testdata/ixp.txt")
	if err != nil {
		t.Fatal(err)
	}
	if x.Len() != 3 {
		t.Errorf("%d entries", x.Len())
	}
	for addr, want := range map[string]string{
		"192.0.2.10":     "EXAMPLE-IX Frankfurt",
		"192.0.2.64":     "",
		"198.51.100.15":  "EXAMPLE-IX2",
		"198.51.100.16":  "",
		"2001:7f8::a5:1": "EXAMPLE-IX v6 LAN",
	} {
		got, ok := x.Lookup(netip.MustParseAddr(addr))
		if got != want || ok != (want != "") {
			t.Errorf("Lookup(%s) = %q, %v; want %q", addr, got, ok, want)
		}
	}
	var none *IXPs
	if _, ok := none.Lookup(netip.MustParseAddr("192.0.2.10")); ok {
		t.Error("nil IXPs found something")
	}
	for _, tc := range []struct{ in, want string }{
		{"", "no entries"},
		{"192.0.2.0/24\n", "line 1: \"192.0.2.0/24\": no IXP name"},
		{"# x\nEXAMPLE-IX 192.0.2.300/24\n", "line 2: \"EXAMPLE-IX 192.0.2.300/24\": want PREFIX NAME"},
	} {
		if _, err := ReadIXPs(strings.NewReader(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.want)
		}
	}
}
