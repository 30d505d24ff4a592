package targets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
)

// fakeHosts is the DNS of the tests.
var fakeHosts = map[string]string{
	"a.example":   "192.0.2.1",
	"b.example":   "192.0.2.1",
	"c.example":   "198.51.100.7",
	"v6.example":  "2001:db8::1",
	"mc.example":  "224.0.0.5",
	"lo.example":  "127.0.0.1",
	"map.example": "::ffff:198.51.100.9",
}

func fakeResolve(_ context.Context, host string) (netip.Addr, error) {
	if s, ok := fakeHosts[host]; ok {
		return netip.MustParseAddr(s), nil
	}
	return netip.Addr{}, errors.New("no such host")
}

// build adds args, then file as "t.txt", and builds.
func build(t *testing.T, opts Options, file string, args ...string) (*Set, error) {
	t.Helper()
	if opts.Resolve == nil {
		opts.Resolve = fakeResolve
	}
	b := NewBuilder(opts)
	for _, a := range args {
		if err := b.AddArg(context.Background(), a); err != nil {
			t.Fatalf("AddArg(%q): %v", a, err)
		}
	}
	if file != "" {
		if err := b.AddFile(context.Background(), strings.NewReader(file), "t.txt"); err != nil {
			t.Fatalf("AddFile: %v", err)
		}
	}
	return b.Build()
}

// all returns every address of s, by At.
func all(s *Set) []string {
	var out []string
	for i := range s.Len() {
		out = append(out, s.At(i).String())
	}
	return out
}

// addrRange returns the addresses from..to as text.
func addrRange(from, to string) []string {
	var out []string
	last := netip.MustParseAddr(to)
	for a := netip.MustParseAddr(from); a.IsValid() && a.Compare(last) <= 0; a = a.Next() {
		out = append(out, a.String())
	}
	return out
}

func cat(lists ...[]string) []string { return slices.Concat(lists...) }

func prefixes(ss ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}

func TestBuild(t *testing.T) {
	for _, tc := range []struct {
		name  string
		six   bool // an IPv6 set
		opts  Options
		file  string
		args  []string
		want  []string
		stats Stats
	}{
		{
			name:  "comments and blank lines",
			file:  "# targets\n\n  10.0.0.1  \n\t10.0.0.3 # trailing comment\n#10.0.0.4\n10.0.0.2#\n   \n",
			want:  []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"},
			stats: Stats{Entries: 3},
		},
		{
			name:  "CRLF line ends",
			file:  "10.0.0.2\r\n10.0.0.1\r\n",
			want:  []string{"10.0.0.1", "10.0.0.2"},
			stats: Stats{Entries: 2},
		},
		{
			name:  "/30 drops network and broadcast",
			file:  "10.0.0.4/30",
			want:  []string{"10.0.0.5", "10.0.0.6"},
			stats: Stats{Entries: 1},
		},
		{
			name:  "/31 keeps both",
			file:  "10.0.0.4/31",
			want:  []string{"10.0.0.4", "10.0.0.5"},
			stats: Stats{Entries: 1},
		},
		{
			name:  "/32",
			file:  "10.0.0.4/32",
			want:  []string{"10.0.0.4"},
			stats: Stats{Entries: 1},
		},
		{
			name:  "/20",
			file:  "10.1.0.0/20",
			want:  addrRange("10.1.0.1", "10.1.15.254"),
			stats: Stats{Entries: 1},
		},
		{
			name:  "/16 is the default limit",
			file:  "10.1.0.0/16",
			want:  addrRange("10.1.0.1", "10.1.255.254"),
			stats: Stats{Entries: 1},
		},
		{
			name:  "overlaps and duplicates",
			file:  "10.0.0.0/24\n10.0.0.0/25\n10.0.0.5\n10.0.0.5\n10.0.1.0/31\n10.0.0.255\n",
			want:  cat(addrRange("10.0.0.1", "10.0.0.255"), addrRange("10.0.1.0", "10.0.1.1")),
			stats: Stats{Entries: 6, Duplicates: 126 + 2},
		},
		{
			name:  "adjacent prefixes",
			file:  "10.0.0.8/30\n10.0.0.4/30\n10.0.0.12/31",
			want:  []string{"10.0.0.5", "10.0.0.6", "10.0.0.9", "10.0.0.10", "10.0.0.12", "10.0.0.13"},
			stats: Stats{Entries: 3},
		},
		{
			name:  "arguments and file",
			args:  []string{"10.0.0.9", " 10.0.0.1 ", "10.0.0.8/30"},
			file:  "10.0.0.1\n",
			want:  []string{"10.0.0.1", "10.0.0.9", "10.0.0.10"},
			stats: Stats{Entries: 4, Duplicates: 2},
		},
		{
			name:  "exclude splits a range",
			opts:  Options{Exclude: prefixes("10.0.0.64/26", "10.0.0.200/32", "2001:db8::/32")},
			file:  "10.0.0.0/24\n10.0.0.70\n10.0.1.1",
			want:  cat(addrRange("10.0.0.1", "10.0.0.63"), addrRange("10.0.0.128", "10.0.0.199"), addrRange("10.0.0.201", "10.0.0.254"), []string{"10.0.1.1"}),
			stats: Stats{Entries: 3, Duplicates: 1, Excluded: 64 + 1},
		},
		{
			name:  "exclude with host bits is masked",
			opts:  Options{Exclude: []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr("10.0.0.5"), 30)}},
			file:  "10.0.0.0/28",
			want:  cat(addrRange("10.0.0.1", "10.0.0.3"), addrRange("10.0.0.8", "10.0.0.14")),
			stats: Stats{Entries: 1, Excluded: 4},
		},
		{
			name:  "exclude at the ends",
			opts:  Options{Exclude: prefixes("10.0.0.0/30", "10.0.0.12/30", "0.0.0.0/32", "255.255.255.255/32")},
			file:  "10.0.0.0/28",
			want:  addrRange("10.0.0.4", "10.0.0.11"),
			stats: Stats{Entries: 1, Excluded: 6},
		},
		{
			name:  "explicit loopback is allowed",
			file:  "127.0.0.1\n127.0.0.1\n",
			want:  []string{"127.0.0.1"},
			stats: Stats{Entries: 2, Duplicates: 1},
		},
		{
			name:  "loopback prefix is skipped",
			file:  "127.0.0.0/30\n127.0.0.2\n10.0.0.1",
			want:  []string{"10.0.0.1", "127.0.0.2"},
			stats: Stats{Entries: 3, Unroutable: 2},
		},
		{
			name:  "prefix straddling 224/4",
			opts:  Options{MaxPrefix: 1 << 30},
			file:  "192.0.0.0/2",
			want:  nil, // checked by TestLarge
			stats: Stats{Entries: 1, Unroutable: 1<<29 - 1},
		},
		{
			name:  "prefixes inside unroutable blocks",
			file:  "224.1.0.0/24\n240.0.0.0/31\n0.1.0.0/32\n10.0.0.1",
			want:  []string{"10.0.0.1"},
			stats: Stats{Entries: 4, Unroutable: 254 + 2 + 1},
		},
		{
			name:  "hostnames",
			file:  "c.example\na.example\nb.example\nc.example\nmap.example\n",
			want:  []string{"192.0.2.1", "198.51.100.7", "198.51.100.9"},
			stats: Stats{Entries: 5, Duplicates: 2},
		},
		{
			name:  "an IPv6 exclusion of everything leaves IPv4 alone",
			opts:  Options{Exclude: prefixes("::/0")},
			args:  []string{"10.0.0.1"},
			want:  []string{"10.0.0.1"},
			stats: Stats{Entries: 1},
		},
		{
			name:  "IPv6 addresses, sorted and deduplicated",
			six:   true,
			file:  "2001:db8::9\n2001:db8::1 # one\n\n2001:DB8::1\nfd00::1\n",
			want:  []string{"2001:db8::1", "2001:db8::9", "fd00::1"},
			stats: Stats{Entries: 4, Duplicates: 1},
		},
		{
			name:  "/126 drops the subnet-router anycast address",
			six:   true,
			file:  "2001:db8::/126",
			want:  []string{"2001:db8::1", "2001:db8::2", "2001:db8::3"},
			stats: Stats{Entries: 1},
		},
		{
			name:  "/127 keeps both",
			six:   true,
			file:  "2001:db8::4/127",
			want:  []string{"2001:db8::4", "2001:db8::5"},
			stats: Stats{Entries: 1},
		},
		{
			name:  "/128",
			six:   true,
			file:  "2001:db8::4/128",
			want:  []string{"2001:db8::4"},
			stats: Stats{Entries: 1},
		},
		{
			name:  "IPv6 ranges across a 64-bit boundary",
			six:   true,
			file:  "2001:db8:0:1:ffff:ffff:ffff:fffc/126\n2001:db8:0:2::/127\n",
			want:  addrRange("2001:db8:0:1:ffff:ffff:ffff:fffd", "2001:db8:0:2::1"),
			stats: Stats{Entries: 2},
		},
		{
			name:  "IPv6 exclude, IPv4 prefixes ignored",
			six:   true,
			opts:  Options{Exclude: prefixes("2001:db8::8/125", "2001:db8::3/128", "10.0.0.0/8")},
			file:  "2001:db8::/124\n2001:db8::9\n",
			want:  cat(addrRange("2001:db8::1", "2001:db8::2"), addrRange("2001:db8::4", "2001:db8::7")),
			stats: Stats{Entries: 2, Duplicates: 1, Excluded: 8 + 1},
		},
		{
			name:  "explicit IPv6 loopback is allowed",
			six:   true,
			file:  "::1\n",
			want:  []string{"::1"},
			stats: Stats{Entries: 1},
		},
		{
			name:  "unspecified and loopback dropped from a prefix",
			six:   true,
			file:  "::/126\n",
			want:  []string{"::2", "::3"},
			stats: Stats{Entries: 1, Unroutable: 1},
		},
		{
			name:  "multicast and mapped prefixes are unroutable",
			six:   true,
			file:  "ff02::/120\nfd00::1\n",
			want:  []string{"fd00::1"},
			stats: Stats{Entries: 2, Unroutable: 255},
		},
		{
			name:  "hostnames with IPv6",
			six:   true,
			opts:  Options{IPv6: true},
			file:  "v6.example\n2001:db8::1\n",
			args:  []string{"v6.example"},
			want:  []string{"2001:db8::1"},
			stats: Stats{Entries: 3, Duplicates: 2},
		},
		{
			name:  "an IPv6 prefix up to --max-prefix",
			six:   true,
			opts:  Options{MaxPrefix: 1 << 20},
			file:  "2001:db8::/108\n",
			want:  nil, // checked by TestLarge
			stats: Stats{Entries: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := build(t, tc.opts, tc.file, tc.args...)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			if s.Is6() != tc.six {
				t.Errorf("Is6 %v, want %v", s.Is6(), tc.six)
			}
			if tc.want != nil {
				if got := all(s); !slices.Equal(got, tc.want) {
					t.Errorf("addresses %v, want %v", got, tc.want)
				}
				if s.Len() != uint64(len(tc.want)) {
					t.Errorf("Len %d, want %d", s.Len(), len(tc.want))
				}
				for _, a := range tc.want {
					if !s.Contains(netip.MustParseAddr(a)) {
						t.Errorf("Contains(%s) = false", a)
					}
				}
			}
			if got := s.Stats(); got != tc.stats {
				t.Errorf("stats %+v, want %+v", got, tc.stats)
			}
		})
	}
}

func TestInvalid(t *testing.T) {
	type problem struct {
		line string
		want string // after "t.txt:2: "
	}
	for _, fam := range []struct {
		opts        Options
		first, last string // valid entries around the invalid one
		problems    []problem
	}{
		{Options{}, "10.0.0.1", "10.0.0.2", []problem{
			{"10.0.0.1 10.0.0.2", `"10.0.0.1 10.0.0.2" has 2 fields, expected one address, hostname or prefix`},
			{"10.0.0.1,10.0.0.2", `"10.0.0.1,10.0.0.2" is not an IPv4 address, prefix or hostname`},
			{"ff02::1", `ff02::1 is never routable: multicast (ff00::/8)`},
			{"::ffff:10.0.0.1", `::ffff:10.0.0.1 is never routable: IPv4-mapped (::ffff:0:0/96): give it as 10.0.0.1`},
			{"fe80::1%eth0", `fe80::1%eth0 has a zone: link-local destinations are not supported`},
			{"2001:db8::/32", `2001:db8::/32 holds 2^96 addresses, more than --max-prefix 65536`},
			{"2001:db8::/129", `2001:db8::/129: prefix length must be 0 to 128`},
			{"::", `:: is never routable: unspecified address (::/128)`},
			{"2001:db8::/111", `2001:db8::/111 holds 131072 addresses, more than --max-prefix 65536`},
			{"2001:db8::1/64", `2001:db8::1/64 has host bits set, did you mean 2001:db8::/64?`},
			{"::ffff:10.0.0.0/120", `::ffff:10.0.0.0/120 is IPv4-mapped (::ffff:0:0/96): give it as an IPv4 prefix`},
			{"fe80::%eth0/64", `fe80::%eth0/64: a prefix has no zone`},
			{"2001:db8:::1", `"2001:db8:::1" is not a valid IPv6 address`},
			{"10.0.0.0/33", `10.0.0.0/33: prefix length must be 0 to 32`},
			{"10.0.0.0/", `"10.0.0.0/" has an invalid prefix length`},
			{"10.0.0.0/x", `"10.0.0.0/x" has an invalid prefix length`},
			{"10.0.0/24", `"10.0.0/24" is not a valid prefix`},
			{"host.example/24", `"host.example/24" is not a valid prefix`},
			{"10.0.0.1/24", `10.0.0.1/24 has host bits set, did you mean 10.0.0.0/24?`},
			{"10.0.0.0/8", `10.0.0.0/8 holds 16777216 addresses, more than --max-prefix 65536`},
			{"10.0.0.0/15", `10.0.0.0/15 holds 131072 addresses, more than --max-prefix 65536`},
			{"0.0.0.0/0", `0.0.0.0/0 holds 4294967296 addresses, more than --max-prefix 65536`},
			{"10.0.0.300", `"10.0.0.300" is not a valid IPv4 address`},
			{"10.1", `"10.1" is not a valid IPv4 address`},
			{"0.1.2.3", `0.1.2.3 is never routable: this network (0.0.0.0/8)`},
			{"224.0.0.1", `224.0.0.1 is never routable: multicast (224.0.0.0/4)`},
			{"239.255.255.255", `239.255.255.255 is never routable: multicast (224.0.0.0/4)`},
			{"240.0.0.1", `240.0.0.1 is never routable: reserved (240.0.0.0/4)`},
			{"255.255.255.255", `255.255.255.255 is never routable: limited broadcast`},
			{"-bad.example", `"-bad.example" is not an IPv4 address, prefix or hostname`},
			{"a..example", `"a..example" is not an IPv4 address, prefix or hostname`},
			{"nx.example", `cannot resolve "nx.example" to an IPv4 address: no such host`},
			{"v6.example", `"v6.example" resolved to 2001:db8::1, not an IPv4 address`},
			{"mc.example", `"mc.example" resolved to 224.0.0.5, never routable: multicast (224.0.0.0/4)`},
		}},
		{Options{IPv6: true}, "2001:db8::1", "2001:db8::2", []problem{
			{"10.0.0.1", `10.0.0.1 is IPv4, but -6 asks for IPv6 destinations`},
			{"10.0.0.0/30", `10.0.0.0/30 is IPv4, but -6 asks for IPv6 destinations`},
			{"c.example", `"c.example" resolved to 198.51.100.7, not an IPv6 address`},
			{"nx.example", `cannot resolve "nx.example" to an IPv6 address: no such host`},
		}},
	} {
		for _, tc := range fam.problems {
			name := tc.line
			if fam.opts.IPv6 {
				name = "-6 " + name
			}
			t.Run(name, func(t *testing.T) {
				_, err := build(t, fam.opts, fam.first+"\n"+tc.line+" # comment\n"+fam.last+"\n")
				if got, want := fmt.Sprint(err), "t.txt:2: "+tc.want; got != want {
					t.Errorf("error\n%s\nwant\n%s", got, want)
				}
				var ie *InvalidError
				if !errors.As(err, &ie) || ie.Count != 1 {
					t.Errorf("error %#v, want an *InvalidError of 1 problem", err)
				}

				_, err = build(t, fam.opts, "", strings.TrimSpace(tc.line))
				if got, want := fmt.Sprint(err), fmt.Sprintf("argument %q: %s", tc.line, tc.want); got != want {
					t.Errorf("error\n%s\nwant\n%s", got, want)
				}
			})
		}
	}
}

func TestInvalidArgs(t *testing.T) {
	_, err := build(t, Options{}, "", "", "10.0.0.1", " x y ")
	want := `argument "": empty destination` + "\n" + `argument " x y ": "x y" has 2 fields, expected one address, hostname or prefix`
	if got := fmt.Sprint(err); got != want {
		t.Errorf("error\n%s\nwant\n%s", got, want)
	}
}

func TestManyProblems(t *testing.T) {
	var file strings.Builder
	for i := range 30 {
		if i%2 == 0 {
			fmt.Fprintf(&file, "nx%d.example\n", i) // reported after resolution
		} else {
			fmt.Fprintf(&file, "224.0.0.%d\n", i)
		}
		file.WriteString("10.0.0.1\n")
	}
	_, err := build(t, Options{}, file.String(), "240.0.0.1")
	var ie *InvalidError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v, want an *InvalidError", err)
	}
	if ie.Count != 31 || len(ie.Problems) != 20 {
		t.Fatalf("%d problems kept of %d, want 20 of 31", len(ie.Problems), ie.Count)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 21 || lines[20] != "and 11 more" {
		t.Fatalf("error of %d lines, last %q: want 21 ending with \"and 11 more\"", len(lines), lines[len(lines)-1])
	}
	if want := `argument "240.0.0.1": 240.0.0.1 is never routable: reserved (240.0.0.0/4)`; lines[0] != want {
		t.Errorf("line 1: %q, want %q", lines[0], want)
	}
	for i, l := range lines[1:20] {
		j := i // problem j of the file is on line 2j+1
		want := fmt.Sprintf("t.txt:%d: 224.0.0.%d is never routable: multicast (224.0.0.0/4)", 2*j+1, j)
		if j%2 == 0 {
			want = fmt.Sprintf(`t.txt:%d: cannot resolve "nx%d.example" to an IPv4 address: no such host`, 2*j+1, j)
		}
		if l != want {
			t.Errorf("line %d: %q, want %q", i+2, l, want)
		}
	}
}

// TestManySyntaxProblems checks the first 20 problems are exact when
// syntax problems are dropped and a name fails to resolve after them.
func TestManySyntaxProblems(t *testing.T) {
	file := "nx.example\n" + strings.Repeat("10.0.0.0/8\n", 25) + "nx.example\n"
	_, err := build(t, Options{}, file)
	var ie *InvalidError
	if !errors.As(err, &ie) || ie.Count != 27 || len(ie.Problems) != 20 {
		t.Fatalf("error %v, want an *InvalidError of 20 problems out of 27", err)
	}
	if want := `t.txt:1: cannot resolve "nx.example" to an IPv4 address: no such host`; ie.Problems[0] != want {
		t.Errorf("first problem %q, want %q", ie.Problems[0], want)
	}
	for i, p := range ie.Problems[1:] {
		if want := fmt.Sprintf("t.txt:%d: 10.0.0.0/8 holds", i+2); !strings.HasPrefix(p, want) {
			t.Errorf("problem %d: %q, want %q...", i+2, p, want)
		}
	}
	if !strings.HasSuffix(err.Error(), "\nand 7 more") {
		t.Errorf("error does not end with \"and 7 more\": %v", err)
	}
}

func TestSkipInvalid(t *testing.T) {
	var warnings []string
	opts := Options{SkipInvalid: true, Warn: func(msg string) { warnings = append(warnings, msg) }}
	s, err := build(t, opts, "10.0.0.1\nnx.example\n10.0.0.0/8\n\n# x\n10.0.0.2 junk\nc.example\n", "224.1.1.1", "10.0.0.3")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := all(s), []string{"10.0.0.1", "10.0.0.3", "198.51.100.7"}; !slices.Equal(got, want) {
		t.Errorf("addresses %v, want %v", got, want)
	}
	if got, want := s.Stats(), (Stats{Entries: 7, Invalid: 4}); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
	want := []string{
		`argument "224.1.1.1": 224.1.1.1 is never routable: multicast (224.0.0.0/4)`,
		`t.txt:2: cannot resolve "nx.example" to an IPv4 address: no such host`,
		`t.txt:3: 10.0.0.0/8 holds 16777216 addresses, more than --max-prefix 65536`,
		`t.txt:6: "10.0.0.2 junk" has 2 fields, expected one address, hostname or prefix`,
	}
	slices.Sort(warnings[1:]) // syntax problems come before resolution ones
	if !slices.Equal(warnings, want) {
		t.Errorf("warnings\n%s\nwant\n%s", strings.Join(warnings, "\n"), strings.Join(want, "\n"))
	}

	// Without Warn the problems are only counted.
	s, err = build(t, Options{SkipInvalid: true}, "10.0.0.1\n10.0.0.1/8\n")
	if err != nil || s.Stats().Invalid != 1 || s.Len() != 1 {
		t.Errorf("got %v, %v: want 1 address, 1 invalid", s, err)
	}
}

func TestMaxPrefix(t *testing.T) {
	for _, tc := range []struct {
		max    uint64
		prefix string
		len    uint64 // 0: refused
	}{
		{0, "10.0.0.0/16", 65534},
		{0, "10.0.0.0/15", 0},
		{1 << 17, "10.0.0.0/15", 1<<17 - 2},
		{1 << 17, "10.0.0.0/14", 0},
		{1, "10.0.0.1/32", 1},
		{1, "10.0.0.0/31", 0},
		{1 << 32, "0.0.0.0/0", 1<<32 - 2*1<<24 - 1<<29},
		{1 << 24, "96.0.0.0/3", 0},
		{1 << 29, "96.0.0.0/3", 1<<29 - 1<<24 - 1},
	} {
		s, err := build(t, Options{MaxPrefix: tc.max}, tc.prefix)
		switch {
		case tc.len == 0 && err == nil:
			t.Errorf("max %d, %s: accepted, want refused", tc.max, tc.prefix)
		case tc.len == 0:
			max := tc.max
			if max == 0 {
				max = DefaultMaxPrefix
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("more than --max-prefix %d", max)) {
				t.Errorf("max %d, %s: %v", tc.max, tc.prefix, err)
			}
		case err != nil:
			t.Errorf("max %d, %s: %v", tc.max, tc.prefix, err)
		case s.Len() != tc.len:
			t.Errorf("max %d, %s: Len %d, want %d", tc.max, tc.prefix, s.Len(), tc.len)
		}
	}
}

// TestLarge checks big sets at their edges without listing them.
func TestLarge(t *testing.T) {
	out4 := []string{"0.0.0.1", "127.0.0.1", "224.0.0.1", "255.255.255.254"}
	for _, tc := range []struct {
		file  string
		max   uint64            // Options.MaxPrefix
		len   uint64            // of the set
		given uint64            // addresses given: the set's and the unroutable ones
		at    map[uint64]string // index: address
		out   []string          // addresses not in the set
	}{
		{"192.0.0.0/2", 1 << 32, 1<<29 - 1, 1<<30 - 2, map[uint64]string{0: "192.0.0.1", 1<<29 - 2: "223.255.255.255"}, out4},
		{"96.0.0.0/3", 1 << 32, 1<<29 - 1<<24 - 1, 1<<29 - 2, map[uint64]string{0: "96.0.0.1", 1<<29 - 1<<24 - 2: "126.255.255.255"}, out4},
		{"0.0.0.0/0", 1 << 32, 1<<32 - 2*1<<24 - 1<<29, 1<<32 - 2, map[uint64]string{
			0:                           "1.0.0.0",
			1<<24*126 - 1:               "126.255.255.255",
			1<<24*126 + 0:               "128.0.0.0",
			1<<32 - 2*1<<24 - 1<<29 - 1: "223.255.255.255",
		}, out4},
		{"2001:db8::/108\n2001:db8:1::/108\n", 1 << 20, 2 * (1<<20 - 1), 2 * (1<<20 - 1), map[uint64]string{
			0:               "2001:db8::1",
			1<<20 - 2:       "2001:db8::f:ffff",
			1<<20 - 1:       "2001:db8:1::1",
			1<<20 + 3:       "2001:db8:1::5",
			2*(1<<20-1) - 1: "2001:db8:1::f:ffff",
		}, []string{"2001:db8::", "2001:db8::10:0", "2001:db8:2::1", "10.0.0.1", "::ffff:10.0.0.1"}},
	} {
		s, err := build(t, Options{MaxPrefix: tc.max}, tc.file)
		if err != nil {
			t.Fatal(err)
		}
		if s.Len() != tc.len {
			t.Errorf("%q: Len %d, want %d", tc.file, s.Len(), tc.len)
		}
		if st := s.Stats(); s.Len()+st.Unroutable != tc.given {
			t.Errorf("%q: Len %d + unroutable %d != %d", tc.file, s.Len(), st.Unroutable, tc.given)
		}
		for i, want := range tc.at {
			if got := s.At(i).String(); got != want {
				t.Errorf("%q: At(%d) = %s, want %s", tc.file, i, got, want)
			}
			if !s.Contains(netip.MustParseAddr(want)) {
				t.Errorf("%q: does not contain %s", tc.file, want)
			}
		}
		for _, a := range tc.out {
			if s.Contains(netip.MustParseAddr(a)) {
				t.Errorf("%q: contains %s", tc.file, a)
			}
		}
		if s.Len() > 1<<21 {
			continue
		}
		// The order of a permutation visits every address once.
		perm := NewPermutation(s.Len(), 7)
		seen := make(map[netip.Addr]bool, s.Len())
		for i, ok := perm.Next(); ok; i, ok = perm.Next() {
			seen[s.At(i)] = true
		}
		if uint64(len(seen)) != s.Len() {
			t.Errorf("%q: %d distinct addresses visited of %d", tc.file, len(seen), s.Len())
		}
	}
}

func TestNothingLeft(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		file string
		args []string
		want string
	}{
		{Options{}, "", nil, "no destination given"},
		{Options{}, "# nothing\n\n", nil, "no destination given"},
		{Options{Exclude: prefixes("0.0.0.0/0")}, "10.0.0.0/24\n10.0.0.1\n127.0.0.0/30\n", nil, "no destination left: 254 excluded, 2 unroutable"},
		{Options{Exclude: prefixes("10.0.0.0/8")}, "", []string{"10.0.0.1", "10.0.0.2"}, "no destination left: 2 excluded"},
		{Options{}, "224.0.0.0/24", nil, "no destination left: 254 unroutable"},
		{Options{SkipInvalid: true}, "nx.example\n224.0.0.0/30", nil, "no destination left: 2 unroutable, 1 invalid skipped"},
		{Options{Exclude: prefixes("::/0")}, "", []string{"2001:db9::1"}, "no destination left: 1 excluded"},
	} {
		s, err := build(t, tc.opts, tc.file, tc.args...)
		if got := fmt.Sprint(err); got != tc.want {
			t.Errorf("%q %q: got %v, %v; want error %q", tc.file, tc.args, s, err, tc.want)
		}
	}
}

func TestName(t *testing.T) {
	s, err := build(t, Options{Exclude: prefixes("198.51.100.7/32")}, "a.example\n192.0.2.1\nb.example\nlo.example\nc.example\n", "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]string{
		"192.0.2.1": "a.example",
		"127.0.0.1": "lo.example",
		"10.0.0.1":  "10.0.0.1",
		"10.9.9.9":  "10.9.9.9",
	} {
		if got := s.Name(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Name(%s) = %q, want %q", addr, got, want)
		}
	}
	if len(s.names) != 2 {
		t.Errorf("names %v: want only those of addresses in the set", s.names)
	}
	// The first name given wins, also across files and arguments.
	s, err = build(t, Options{}, "a.example\n", "b.example")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Name(netip.MustParseAddr("192.0.2.1")); got != "b.example" {
		t.Errorf("Name = %q, want b.example", got)
	}
}

func TestContains(t *testing.T) {
	for _, tc := range []struct {
		file string
		want map[string]bool // address: in the set
	}{
		{"10.0.0.0/30\n10.0.0.9\n192.0.2.0/31", map[string]bool{
			"10.0.0.0": false, "10.0.0.1": true, "10.0.0.2": true, "10.0.0.3": false,
			"10.0.0.8": false, "10.0.0.9": true, "10.0.0.10": false,
			"192.0.2.0": true, "192.0.2.1": true, "192.0.2.2": false,
			"1.1.1.1": false, "255.255.255.255": false, "::1": false, "::ffff:10.0.0.1": false,
		}},
		{"2001:db8::/126\n2001:db8::9\nfd00::/127", map[string]bool{
			"2001:db8::": false, "2001:db8::1": true, "2001:db8::3": true, "2001:db8::4": false,
			"2001:db8::8": false, "2001:db8::9": true, "2001:db8::a": false,
			"fd00::": true, "fd00::1": true, "fd00::2": false,
			"::1": false, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": false, "10.0.0.1": false, "2001:db8::1%eth0": true,
		}},
	} {
		s, err := build(t, Options{}, tc.file)
		if err != nil {
			t.Fatal(err)
		}
		for addr, want := range tc.want {
			if got := s.Contains(netip.MustParseAddr(addr)); got != want {
				t.Errorf("%q: Contains(%s) = %v, want %v", tc.file, addr, got, want)
			}
		}
	}
}

func TestAtOutOfRange(t *testing.T) {
	s, err := build(t, Options{}, "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("At(Len()) did not panic")
		}
	}()
	s.At(s.Len())
}

func TestParseExclude(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []netip.Prefix
	}{
		{"# blocklist\n10.0.0.0/8 # RFC 1918\n\n192.0.2.1\n  0.0.0.0/0\n", prefixes("10.0.0.0/8", "192.0.2.1/32", "0.0.0.0/0")},
		{"2001:db8::/32\nfd00::1\n::/0\n", prefixes("2001:db8::/32", "fd00::1/128", "::/0")},
	} {
		got, err := ParseExclude(strings.NewReader(tc.file), "ex.conf")
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %v, %v; want %v", tc.file, got, err, tc.want)
		}
	}

	_, err := ParseExclude(strings.NewReader("10.0.0.0/8\n10.0.0.1/8\nfoo.example\n2001:db8::1/32\n10.0.0.0/33\n1.2.3.4 5.6.7.8\nfe80::1%eth0\n"), "ex.conf")
	wantErr := strings.Join([]string{
		`ex.conf:2: 10.0.0.1/8 has host bits set, did you mean 10.0.0.0/8?`,
		`ex.conf:3: "foo.example" is not an IPv4 prefix or address`,
		`ex.conf:4: 2001:db8::1/32 has host bits set, did you mean 2001:db8::/32?`,
		`ex.conf:5: 10.0.0.0/33: prefix length must be 0 to 32`,
		`ex.conf:6: "1.2.3.4 5.6.7.8" has 2 fields, expected one prefix or address`,
		`ex.conf:7: fe80::1%eth0 has a zone`,
	}, "\n")
	if fmt.Sprint(err) != wantErr {
		t.Errorf("error\n%v\nwant\n%s", err, wantErr)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestReadError(t *testing.T) {
	b := NewBuilder(Options{})
	if err := b.AddFile(context.Background(), failingReader{}, "-"); fmt.Sprint(err) != "read -: disk on fire" {
		t.Errorf("AddFile: %v", err)
	}
	if _, err := ParseExclude(failingReader{}, "ex.conf"); fmt.Sprint(err) != "read ex.conf: disk on fire" {
		t.Errorf("ParseExclude: %v", err)
	}
}

// TestResolveConcurrency resolves 200 names (each twice in the file): each
// is looked up once, resolveWorkers at a time. The first resolveWorkers
// lookups are held until that many are in flight, so that the test shows
// the resolver reaching its limit rather than hoping that lookups overlap;
// one more at any time would be seen.
func TestResolveConcurrency(t *testing.T) {
	var inFlight, most atomic.Int32
	var mu sync.Mutex
	asked := map[string]int{}
	full := make(chan struct{})
	var fill sync.Once
	resolve := func(ctx context.Context, host string) (netip.Addr, error) {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("lookup without a deadline")
		}
		mu.Lock()
		asked[host]++
		mu.Unlock()
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		if n == resolveWorkers {
			fill.Do(func() { close(full) })
		}
		select {
		case <-full:
		case <-time.After(time.Minute):
			// A resolver that never gets there: let the rest through;
			// most says so.
			fill.Do(func() { close(full) })
		}
		inFlight.Add(-1)
		var i int
		fmt.Sscanf(host, "h%d.example", &i)
		return u32(0x0a000000 + i).addr(), nil
	}
	var file strings.Builder
	for i := range 200 {
		fmt.Fprintf(&file, "h%d.example\nh%d.example\n", i, i)
	}
	s, err := build(t, Options{Resolve: resolve}, file.String())
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 200 || s.Name(netip.MustParseAddr("10.0.0.199")) != "h199.example" {
		t.Errorf("Len %d, Name %q", s.Len(), s.Name(netip.MustParseAddr("10.0.0.199")))
	}
	if m := most.Load(); m != resolveWorkers {
		t.Errorf("%d lookups at once, want %d", m, resolveWorkers)
	}
	for h, n := range asked {
		if n != 1 {
			t.Errorf("%s looked up %d times", h, n)
		}
	}
}

func TestResolveCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	resolve := func(ctx context.Context, host string) (netip.Addr, error) { return netip.Addr{}, ctx.Err() }
	b := NewBuilder(Options{Resolve: resolve})
	if err := b.AddFile(ctx, strings.NewReader("a.example\n"), "t.txt"); !errors.Is(err, context.Canceled) {
		t.Errorf("AddFile: %v", err)
	}
	if err := b.AddArg(ctx, "a.example"); !errors.Is(err, context.Canceled) {
		t.Errorf("AddArg: %v", err)
	}
	// Addresses need no resolution: a canceled context does not matter.
	if err := b.AddFile(ctx, strings.NewReader("10.0.0.1\n"), "t.txt"); err != nil {
		t.Errorf("AddFile: %v", err)
	}
}

// TestMillion reads a file of 1,000,000 distinct addresses, in a shuffled
// order and some twice.
func TestMillion(t *testing.T) {
	testenv.SkipIfShort(t, "reads a million addresses")
	const n = 1_000_000
	var file bytes.Buffer
	addr := func(i uint64) netip.Addr { return u32(0x0a000000 + 3*i).addr() } // never adjacent
	p := NewPermutation(n, 1)
	for i, ok := p.Next(); ok; i, ok = p.Next() {
		file.WriteString(addr(i).String())
		file.WriteByte('\n')
		if i%100 == 0 {
			fmt.Fprintf(&file, "%s # again\n", addr(i))
		}
	}
	s, err := build(t, Options{}, file.String())
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != n || len(s.spans4) != n {
		t.Fatalf("Len %d in %d spans, want %d", s.Len(), len(s.spans4), n)
	}
	if got, want := s.Stats(), (Stats{Entries: n + n/100, Duplicates: n / 100}); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
	for _, i := range []uint64{0, 1, 2, 12345, n / 2, n - 2, n - 1} {
		if got := s.At(i); got != addr(i) {
			t.Errorf("At(%d) = %s, want %s", i, got, addr(i))
		}
	}
}

func TestNoAllocs(t *testing.T) {
	for _, file := range []string{
		"10.0.0.0/20\n10.1.0.1\n10.2.0.0/24\n",
		"2001:db8::/116\n2001:db8:1::1\n2001:db8:2::/120\n",
	} {
		s, err := build(t, Options{}, file)
		if err != nil {
			t.Fatal(err)
		}
		var i uint64
		if n := testing.AllocsPerRun(1000, func() { s.At(i % s.Len()); i += 7 }); n != 0 {
			t.Errorf("%q: At: %v allocations", file, n)
		}
		a := s.At(s.Len() / 2)
		if n := testing.AllocsPerRun(1000, func() { s.Contains(a) }); n != 0 {
			t.Errorf("%q: Contains: %v allocations", file, n)
		}
	}
}

// benchSet builds a set of 10,000 prefixes of the family, none adjacent.
func benchSet(b *testing.B, six bool) *Set {
	var file strings.Builder
	for i := range 10000 {
		if six {
			fmt.Fprintf(&file, "2001:db8:%x:%x::/120\n", i/256, i%256)
		} else {
			fmt.Fprintf(&file, "10.%d.%d.0/24\n", i/256, i%256)
		}
	}
	bl := NewBuilder(Options{})
	if err := bl.AddFile(context.Background(), strings.NewReader(file.String()), "b.txt"); err != nil {
		b.Fatal(err)
	}
	s, err := bl.Build()
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkAt(b *testing.B) {
	for _, six := range []bool{false, true} {
		b.Run(familyName(six), func(b *testing.B) {
			s := benchSet(b, six)
			n := s.Len()
			b.ReportAllocs()
			var i uint64
			for b.Loop() {
				s.At(i)
				i += 7919
				if i >= n {
					i -= n
				}
			}
		})
	}
}

func BenchmarkContains(b *testing.B) {
	for _, six := range []bool{false, true} {
		b.Run(familyName(six), func(b *testing.B) {
			s := benchSet(b, six)
			// Every other address is in a gap between prefixes.
			addrs := make([]netip.Addr, 1024)
			for j := range addrs {
				addrs[j] = s.At(uint64(j) * 7919 % s.Len())
				if j%2 == 1 {
					addrs[j] = addrs[j].Next().Next().Next()
				}
			}
			b.ReportAllocs()
			var j int
			for b.Loop() {
				s.Contains(addrs[j%len(addrs)])
				j++
			}
		})
	}
}

// BenchmarkBuild reads and builds 100,000 addresses in a shuffled order.
func BenchmarkBuild(b *testing.B) {
	for _, six := range []bool{false, true} {
		b.Run(familyName(six), func(b *testing.B) {
			var file strings.Builder
			p := NewPermutation(100_000, 1)
			for i, ok := p.Next(); ok; i, ok = p.Next() {
				if six {
					fmt.Fprintf(&file, "2001:db8::%x:%x\n", i/3, i%3*2)
				} else {
					fmt.Fprintf(&file, "10.%d.%d.%d\n", i/65536, i/256%256, i%256)
				}
			}
			text := file.String()
			opts := Options{Exclude: prefixes("10.1.0.0/16", "2001:db8::/120")}
			b.ReportAllocs()
			for b.Loop() {
				bl := NewBuilder(opts)
				if err := bl.AddFile(context.Background(), strings.NewReader(text), "b.txt"); err != nil {
					b.Fatal(err)
				}
				if _, err := bl.Build(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
