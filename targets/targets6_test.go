package targets

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestMixedFamilies(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		args []string
		want string
	}{
		{
			name: "arguments",
			args: []string{"10.0.0.1", "10.0.0.2", "2001:db8::1", "2001:db8::2"},
			want: `argument "2001:db8::1": 2001:db8::1 is IPv6, but argument "10.0.0.1": 10.0.0.1 is IPv4: a run traces one address family; trace them in separate runs`,
		},
		{
			name: "IPv6 first",
			file: "# v6\n2001:db8::/126\n10.0.0.0/30\n192.0.2.1\n",
			want: `t.txt:3: 10.0.0.0/30 is IPv4, but t.txt:2: 2001:db8::/126 is IPv6: a run traces one address family; trace them in separate runs`,
		},
		{
			name: "a hostname before the first IPv6 line",
			file: "c.example\n2001:db8::1\n",
			want: `t.txt:2: 2001:db8::1 is IPv6, but t.txt:1: c.example (198.51.100.7) is IPv4: a run traces one address family; trace them in separate runs`,
		},
		{
			name: "file after arguments",
			args: []string{"fd00::1"},
			file: "2001:db8::1\n\n10.0.0.1\n",
			want: `t.txt:3: 10.0.0.1 is IPv4, but argument "fd00::1": fd00::1 is IPv6: a run traces one address family; trace them in separate runs`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := build(t, Options{}, tc.file, tc.args...)
			var me *MixedError
			if !errors.As(err, &me) || err.Error() != tc.want {
				t.Errorf("error\n%v\nwant\n%s", err, tc.want)
			}
		})
	}
	// Invalid entries are reported first; skipped ones do not count.
	_, err := build(t, Options{}, "10.0.0.1\n2001:db8::/32\n")
	var ie *InvalidError
	if !errors.As(err, &ie) {
		t.Errorf("error %v, want an *InvalidError", err)
	}
	s, err := build(t, Options{SkipInvalid: true}, "10.0.0.1\n2001:db8::/32\n")
	if err != nil || s.Is6() || s.Len() != 1 {
		t.Errorf("skipping the invalid IPv6 prefix: %v, %v", s, err)
	}
}

// TestIPv6Option checks the answers a resolver may give for an IPv6 set;
// TestInvalid checks the entries it refuses.
func TestIPv6Option(t *testing.T) {
	// A resolver may give a zone or a mapped address: neither is kept.
	resolve := func(_ context.Context, host string) (netip.Addr, error) {
		if strings.HasPrefix(host, "ll") {
			return netip.MustParseAddr("fd00::7%eth0"), nil
		}
		return netip.MustParseAddr("::ffff:192.0.2.1"), nil
	}
	s, err := build(t, Options{IPv6: true, Resolve: resolve}, "", "ll.example")
	if err != nil || all(s)[0] != "fd00::7" || s.Name(netip.MustParseAddr("fd00::7")) != "ll.example" {
		t.Errorf("zoned answer: %v, %v", s, err)
	}
	if _, err := build(t, Options{IPv6: true, Resolve: resolve}, "", "m.example"); err == nil ||
		!strings.Contains(err.Error(), "not an IPv6 address") {
		t.Errorf("mapped answer: %v", err)
	}
}
