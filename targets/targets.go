// Package targets turns the destinations a user names — command-line
// arguments and target files — into a compact, deduplicated [Set] of IPv4
// or IPv6 addresses, and visits it in a seeded pseudo-random order with a
// [Permutation], without ever materialising the list of addresses.
//
// An entry is an IPv4 or IPv6 address, a hostname or a CIDR prefix. In a
// file there is one entry per line; '#' starts a comment, blank lines and
// surrounding whitespace are ignored. A prefix of length 30 or less stands
// for its addresses but the network and broadcast ones; addresses that are
// never routable (0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/4, 240.0.0.0/4) are
// dropped from prefixes, and an entry naming one of them explicitly is
// invalid, except 127.0.0.0/8 which can be traced locally. Excluded
// prefixes ([Options.Exclude], see [ParseExclude]) are removed from every
// entry.
//
// IPv6 alike: an IPv6 prefix of length 126 or less stands for its addresses
// but the first (the subnet-router anycast address, RFC 4291); ::/128,
// ::1/128, the IPv4-mapped ::ffff:0:0/96 and multicast ff00::/8 are dropped
// from prefixes, and an entry naming one of them is invalid, except ::1.
// Hostnames resolve to IPv4 addresses, or to IPv6 ones with
// [Options.IPv6]. A set holds one address family: the destinations of a
// run must all be IPv4 or all IPv6 ([Set.Is6]).
//
// The set is held as sorted, disjoint ranges, so its memory grows with the
// number of ranges, not of addresses:
//
//	b := targets.NewBuilder(targets.Options{Exclude: excl})
//	for _, arg := range args {
//		if err := b.AddArg(ctx, arg); err != nil {
//			return err
//		}
//	}
//	if err := b.AddFile(ctx, f, "hosts.txt"); err != nil {
//		return err
//	}
//	set, err := b.Build() // every invalid entry, FILE:LINE each
//	if err != nil {
//		return err
//	}
//	perm := targets.NewPermutation(set.Len(), seed)
//	for i, ok := perm.Next(); ok; i, ok = perm.Next() {
//		dst := set.At(i) // shown as set.Name(dst)
//	}
package targets

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
)

// DefaultMaxPrefix is the number of addresses of the largest prefix accepted
// when [Options.MaxPrefix] is zero: a /16.
const DefaultMaxPrefix = 1 << 16

const (
	maxProblems    = 20              // invalid entries kept for an InvalidError
	resolveTimeout = 5 * time.Second // per hostname
	resolveWorkers = 16              // concurrent lookups per file
)

// Options configures a [Builder]. The zero value is ready to use.
type Options struct {
	// MaxPrefix is the number of addresses of the largest prefix accepted;
	// larger prefixes are invalid entries. Zero means DefaultMaxPrefix.
	MaxPrefix uint64

	// SkipInvalid skips invalid entries, counting them in Stats.Invalid,
	// instead of failing Build.
	SkipInvalid bool

	// Exclude lists prefixes removed from every destination, IPv4 and
	// IPv6; host bits are ignored.
	Exclude []netip.Prefix

	// IPv6 makes the set IPv6: hostnames resolve to IPv6 addresses, and
	// IPv4 entries are invalid.
	IPv6 bool

	// Resolve returns the IPv4 (with IPv6, the IPv6) address of a hostname.
	// Nil means the system resolver's first address of that family. Every
	// call is bounded by a 5 s timeout; calls run concurrently.
	Resolve func(ctx context.Context, host string) (netip.Addr, error)

	// Warn, if set, is called with "FILE:LINE: what is wrong" once for each
	// entry skipped under SkipInvalid. Within a file, names that failed to
	// resolve come after the lines that failed to parse.
	Warn func(msg string)
}

// Stats counts what a [Builder] read and dropped. Addresses of prefixes
// count after their network and broadcast addresses are removed, so that
// the addresses given by all valid entries add up to
// Set.Len() + Duplicates + Excluded + Unroutable.
type Stats struct {
	Entries    uint64 // arguments and non-blank, non-comment lines read
	Invalid    uint64 // entries skipped as invalid (Options.SkipInvalid)
	Duplicates uint64 // addresses given again by another entry
	Excluded   uint64 // distinct addresses removed by Options.Exclude
	Unroutable uint64 // never-routable addresses dropped from prefixes
}

// InvalidError reports invalid entries: at most the first 20, each as
// "FILE:LINE: what is wrong" or `argument "x": what is wrong`.
type InvalidError struct {
	Problems []string // the first problems, in the order of the input
	Count    int      // all problems, including those not kept
}

func (e *InvalidError) Error() string {
	s := strings.Join(e.Problems, "\n")
	if more := e.Count - len(e.Problems); more > 0 {
		s += fmt.Sprintf("\nand %d more", more)
	}
	return s
}

func (e *InvalidError) add(msg string) {
	if len(e.Problems) < maxProblems {
		e.Problems = append(e.Problems, msg)
	}
	e.Count++
}

// A Builder collects destinations and builds a [Set] of them. It is not safe
// for concurrent use.
type Builder struct {
	opts    Options
	raw4    []rng[u32]  // every valid IPv4 entry's addresses, in input order
	raw6    []rng[u128] // every valid IPv6 entry's addresses, in input order
	given   uint64      // addresses in raw4 and raw6, duplicates included
	names   map[netip.Addr]string
	stats   Stats
	invalid InvalidError
	// The first valid IPv4 and IPv6 entries, in input order: the first of
	// all sets the family of the set; both make a mixed list.
	first4, first6 familyEntry
}

// familyEntry is where a valid entry was given and what it said.
type familyEntry struct {
	seq   uint64 // its place in the input: Stats.Entries when it was read
	name  string // the file, or `argument "x"`
	line  int    // in the file; 0 for an argument
	where string // "FILE:LINE" or `argument "x"`, once recorded; "" when unset
	what  string // the entry's text, or "HOST (ADDR)"
	six   bool   // IPv6
}

// MixedError reports destinations of both address families: Other, the
// first entry of the other family than First's, the first of all.
type MixedError struct {
	First, Other string // "WHERE: WHAT"
	Six          bool   // Other is IPv6 (First IPv4)
}

func (e *MixedError) Error() string {
	return fmt.Sprintf("%s is %s, but %s is %s: a run traces one address family; trace them in separate runs",
		e.Other, familyName(e.Six), e.First, familyName(!e.Six))
}

// NewBuilder returns an empty Builder.
func NewBuilder(opts Options) *Builder {
	if opts.MaxPrefix == 0 {
		opts.MaxPrefix = DefaultMaxPrefix
	}
	if opts.Resolve == nil {
		opts.Resolve = lookup(opts.IPv6)
	}
	return &Builder{opts: opts, names: map[netip.Addr]string{}}
}

// AddArg adds one command-line destination: an address, a hostname or a
// prefix. An invalid destination is not an error of AddArg: Build reports
// it (or, with SkipInvalid, Warn does) as `argument "x": what is wrong`.
// AddArg fails only if ctx ends while a hostname is resolved.
func (b *Builder) AddArg(ctx context.Context, s string) error {
	b.stats.Entries++
	where := fmt.Sprintf("argument %q", s)
	s = strings.TrimSpace(s)
	e, err := b.parse(s)
	if err != nil {
		b.problem(where, err)
		return nil
	}
	seq := b.stats.Entries
	if e.host == "" {
		b.add(e, familyEntry{seq: seq, name: where, what: s})
		return nil
	}
	addr, err := b.resolve(ctx, e.host)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("resolve %q: %w", s, ctx.Err())
		}
		b.problem(where, err)
		return nil
	}
	b.addHost(e.host, addr, familyEntry{seq: seq, name: where})
	return nil
}

// AddPath adds the entries of the target file at path, or of stdin when
// path is "-" (see AddFile).
func (b *Builder) AddPath(ctx context.Context, path string, stdin io.Reader) error {
	if path == "-" {
		return b.AddFile(ctx, stdin, "-")
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return b.AddFile(ctx, f, path)
}

// AddFile adds the entries of a target file, one per line; name is used in
// messages ("-" for standard input). Hostnames are resolved concurrently.
// Invalid lines are reported by Build (or, with SkipInvalid, by Warn) as
// "name:LINE: what is wrong". AddFile fails only if r cannot be read (lines
// are limited to 64 KiB) or ctx ends while hostnames are resolved; the file
// may then be partly added.
func (b *Builder) AddFile(ctx context.Context, r io.Reader, name string) error {
	type hostLine struct {
		line int
		seq  uint64
		host string
	}
	type lineProblem struct {
		line int
		err  error
	}
	var (
		hosts    []hostLine
		problems []lineProblem // the first maxProblems, unless skipped
		dropped  int           // problems beyond those
	)
	// flag records a problem; all are kept if keepAll, else the first
	// maxProblems.
	flag := func(line int, err error, keepAll bool) {
		switch {
		case b.opts.SkipInvalid:
			b.problem(fmt.Sprintf("%s:%d", name, line), err)
		case keepAll || len(problems) < maxProblems:
			problems = append(problems, lineProblem{line, err})
		default:
			dropped++
		}
	}
	err := scanEntries(r, name, func(line int, s string) {
		b.stats.Entries++
		e, err := b.parse(s)
		switch {
		case err != nil:
			flag(line, err, false)
		case e.host != "":
			hosts = append(hosts, hostLine{line, b.stats.Entries, e.host})
		default:
			b.add(e, familyEntry{seq: b.stats.Entries, name: name, line: line, what: s})
		}
	})
	if err != nil {
		return err
	}

	// Resolve every distinct name once, at most resolveWorkers at a time.
	index := map[string]int{}
	var distinct []string
	for _, h := range hosts {
		if _, ok := index[h.host]; !ok {
			index[h.host] = len(distinct)
			distinct = append(distinct, h.host)
		}
	}
	addrs := make([]netip.Addr, len(distinct))
	errs := make([]error, len(distinct))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(resolveWorkers, len(distinct)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(distinct) {
					return
				}
				addrs[i], errs[i] = b.resolve(ctx, distinct[i])
			}
		})
	}
	wg.Wait()
	if len(distinct) > 0 && ctx.Err() != nil {
		return fmt.Errorf("resolve hostnames of %s: %w", name, ctx.Err())
	}
	for _, h := range hosts {
		i := index[h.host]
		if errs[i] != nil {
			flag(h.line, errs[i], true)
			continue
		}
		b.addHost(h.host, addrs[i], familyEntry{seq: h.seq, name: name, line: h.line})
	}

	// Every syntax problem dropped comes after maxProblems kept ones, so
	// the first maxProblems in line order are exact.
	slices.SortStableFunc(problems, func(x, y lineProblem) int { return cmp.Compare(x.line, y.line) })
	for _, p := range problems {
		b.problem(fmt.Sprintf("%s:%d", name, p.line), p.err)
	}
	b.invalid.Count += dropped
	return nil
}

// Build returns the set of the destinations added so far. It fails with an
// *InvalidError if an entry was invalid (unless Options.SkipInvalid), and
// when no destination is left, saying why.
func (b *Builder) Build() (*Set, error) {
	if b.invalid.Count > 0 && !b.opts.SkipInvalid {
		e := b.invalid
		e.Problems = slices.Clone(e.Problems)
		return nil, &e
	}
	f4, f6 := b.first4, b.first6
	if f4.where != "" && f6.where != "" {
		first, other := f4, f6
		if f6.seq < f4.seq {
			first, other = f6, f4
		}
		return nil, &MixedError{First: first.where + ": " + first.what, Other: other.where + ": " + other.what, Six: other.six}
	}
	s := &Set{}
	var union, kept uint64
	if f6.where != "" {
		s.v6 = true
		s.spans6, union, kept = ip6.spans(&b.raw6, b.opts.Exclude)
	} else {
		s.spans4, union, kept = ip4.spans(&b.raw4, b.opts.Exclude)
	}

	st := b.stats
	st.Duplicates = b.given - union
	st.Excluded = union - kept
	s.stats = st
	if s.Len() == 0 {
		var why []string
		for _, c := range []struct {
			n    uint64
			what string
		}{{st.Excluded, "excluded"}, {st.Unroutable, "unroutable"}, {st.Invalid, "invalid skipped"}} {
			if c.n > 0 {
				why = append(why, fmt.Sprintf("%d %s", c.n, c.what))
			}
		}
		if len(why) == 0 {
			return nil, errors.New("no destination given")
		}
		return nil, fmt.Errorf("no destination left: %s", strings.Join(why, ", "))
	}
	for a, name := range b.names {
		if s.Contains(a) {
			if s.names == nil {
				s.names = map[netip.Addr]string{}
			}
			s.names[a] = name
		}
	}
	return s, nil
}

// problem records an invalid entry found at where.
func (b *Builder) problem(where string, err error) {
	msg := where + ": " + err.Error()
	if !b.opts.SkipInvalid {
		b.invalid.add(msg)
		return
	}
	b.stats.Invalid++
	if b.opts.Warn != nil {
		b.opts.Warn(msg)
	}
}

// add records the addresses of an address or prefix entry, given where
// and as fe says.
func (b *Builder) add(e entry, fe familyEntry) {
	b.family(e.six, fe)
	var kept, dropped uint64
	switch {
	case e.prefix && e.six:
		b.raw6, kept, dropped = ip6.addPrefix(b.raw6, e.r6)
	case e.prefix:
		b.raw4, kept, dropped = ip4.addPrefix(b.raw4, e.r4)
	case e.six:
		x := u128Of(e.addr)
		b.raw6, kept = append(b.raw6, rng[u128]{x, x}), 1
	default:
		x := u32Of(e.addr)
		b.raw4, kept = append(b.raw4, rng[u32]{x, x}), 1
	}
	b.given += kept
	b.stats.Unroutable += dropped
}

// family records fe, a valid entry, if it is the first of its family so
// far in input order (hostnames of a file are added after its other
// lines, so a later call may come first).
func (b *Builder) family(six bool, fe familyEntry) {
	first := &b.first4
	if six {
		first = &b.first6
	}
	if first.where != "" && first.seq <= fe.seq {
		return
	}
	fe.six, fe.where = six, fe.name
	if fe.line > 0 {
		fe.where = fmt.Sprintf("%s:%d", fe.name, fe.line)
	}
	*first = fe
}

func familyName(six bool) string {
	if six {
		return "IPv6"
	}
	return "IPv4"
}

// addHost records the address a hostname resolved to, and the name.
func (b *Builder) addHost(host string, addr netip.Addr, fe familyEntry) {
	fe.what = host + " (" + addr.String() + ")"
	b.add(entry{addr: addr, six: addr.Is6()}, fe)
	if _, ok := b.names[addr]; !ok {
		b.names[addr] = host
	}
}

// resolve looks up host and checks its address like an explicit one.
func (b *Builder) resolve(ctx context.Context, host string) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addr, err := b.opts.Resolve(ctx, host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("cannot resolve %q to an %s address: %w", host, familyName(b.opts.IPv6), err)
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is4() == b.opts.IPv6 {
		return netip.Addr{}, fmt.Errorf("%q resolved to %s, not an %s address", host, addr, familyName(b.opts.IPv6))
	}
	if why := neverRoutable(addr); why != "" {
		return netip.Addr{}, fmt.Errorf("%q resolved to %s, never routable: %s", host, addr, why)
	}
	return addr, nil
}

// lookup returns the default resolver of an IPv4 or (six) IPv6 set.
func lookup(six bool) func(ctx context.Context, host string) (netip.Addr, error) {
	network := "ip4"
	if six {
		network = "ip6"
	}
	return func(ctx context.Context, host string) (netip.Addr, error) {
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, network, host)
		if err != nil {
			return netip.Addr{}, err
		}
		if len(addrs) == 0 {
			return netip.Addr{}, fmt.Errorf("no %s address", familyName(six))
		}
		return addrs[0], nil
	}
}

// entry is one parsed destination: a hostname to resolve, or the addresses
// of an address or a prefix.
type entry struct {
	host   string
	addr   netip.Addr // an address, unless prefix
	r4     rng[u32]   // a prefix's addresses, unless six
	r6     rng[u128]  // a prefix's addresses, when six
	six    bool       // an IPv6 address or prefix
	prefix bool       // r4 or r6 holds the entry, to be cleared of unroutable addresses
}

// parse parses one trimmed, non-empty entry.
func (b *Builder) parse(s string) (entry, error) {
	if s == "" {
		return entry{}, errors.New("empty destination")
	}
	if strings.IndexFunc(s, unicode.IsSpace) >= 0 {
		return entry{}, fmt.Errorf("%q has %d fields, expected one address, hostname or prefix", s, len(strings.Fields(s)))
	}
	if strings.Contains(s, "/") {
		p, err := parsePrefix(s)
		if err != nil {
			return entry{}, err
		}
		if err := b.checkFamily(s, p.Addr().Is6()); err != nil {
			return entry{}, err
		}
		return b.prefix(p)
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if err := b.checkFamily(s, a.Is6()); err != nil {
			return entry{}, err
		}
		if a.Zone() != "" {
			return entry{}, fmt.Errorf("%s has a zone: link-local destinations are not supported", s)
		}
		if why := neverRoutable(a); why != "" {
			return entry{}, fmt.Errorf("%s is never routable: %s", s, why)
		}
		return entry{addr: a, six: a.Is6()}, nil
	}
	if strings.Trim(s, "0123456789.") == "" {
		return entry{}, fmt.Errorf("%q is not a valid IPv4 address", s)
	}
	if strings.Contains(s, ":") {
		return entry{}, fmt.Errorf("%q is not a valid IPv6 address", s)
	}
	if !isHostname(s) {
		return entry{}, fmt.Errorf("%q is not an IPv4 address, prefix or hostname", s)
	}
	return entry{host: s}, nil
}

// checkFamily refuses an IPv4 entry s of an IPv6 set (Options.IPv6).
func (b *Builder) checkFamily(s string, six bool) error {
	if b.opts.IPv6 && !six {
		return fmt.Errorf("%s is IPv4, but -6 asks for IPv6 destinations", s)
	}
	return nil
}

// prefix returns the entry of a prefix p, the addresses it stands for (see
// ipFamily.hosts), unless it holds more than Options.MaxPrefix addresses.
func (b *Builder) prefix(p netip.Prefix) (entry, error) {
	if host := p.Addr().BitLen() - p.Bits(); host >= 64 || uint64(1)<<host > b.opts.MaxPrefix {
		n := fmt.Sprintf("2^%d", host)
		if host < 64 {
			n = strconv.FormatUint(uint64(1)<<host, 10)
		}
		return entry{}, fmt.Errorf("%s holds %s addresses, more than --max-prefix %d", p, n, b.opts.MaxPrefix)
	}
	if p.Addr().Is6() {
		return entry{six: true, r6: ip6.hosts(p), prefix: true}, nil
	}
	return entry{r4: ip4.hosts(p), prefix: true}, nil
}

// parsePrefix parses an IPv4 or IPv6 prefix without host bits, explaining
// what is wrong otherwise.
func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		i := strings.LastIndexByte(s, '/')
		a, aerr := netip.ParseAddr(s[:i])
		switch {
		case aerr != nil:
			return netip.Prefix{}, fmt.Errorf("%q is not a valid prefix", s)
		case a.Zone() != "":
			return netip.Prefix{}, fmt.Errorf("%s: a prefix has no zone", s)
		}
		if n, err := strconv.ParseUint(s[i+1:], 10, 8); err == nil && n > uint64(a.BitLen()) {
			return netip.Prefix{}, fmt.Errorf("%s: prefix length must be 0 to %d", s, a.BitLen())
		}
		return netip.Prefix{}, fmt.Errorf("%q has an invalid prefix length", s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%s is IPv4-mapped (::ffff:0:0/96): give it as an IPv4 prefix", s)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%s has host bits set, did you mean %s?", s, m)
	}
	return p, nil
}

// ParseExclude parses an exclude list: an IPv4 or IPv6 prefix or address per line,
// '#' comments and blank lines, as in zmap's blocklist files. Invalid lines
// are reported together in an *InvalidError, as "name:LINE: what is wrong".
func ParseExclude(r io.Reader, name string) ([]netip.Prefix, error) {
	var (
		out     []netip.Prefix
		invalid InvalidError
	)
	err := scanEntries(r, name, func(line int, s string) {
		p, err := parseExcludeEntry(s)
		if err != nil {
			invalid.add(fmt.Sprintf("%s:%d: %v", name, line, err))
			return
		}
		out = append(out, p)
	})
	if err != nil {
		return nil, err
	}
	if invalid.Count > 0 {
		return nil, &invalid
	}
	return out, nil
}

func parseExcludeEntry(s string) (netip.Prefix, error) {
	if strings.IndexFunc(s, unicode.IsSpace) >= 0 {
		return netip.Prefix{}, fmt.Errorf("%q has %d fields, expected one prefix or address", s, len(strings.Fields(s)))
	}
	if strings.Contains(s, "/") {
		return parsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 prefix or address", s)
	case a.Zone() != "":
		return netip.Prefix{}, fmt.Errorf("%s has a zone", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// scanEntries calls f with the line number and text of each entry of r, a
// target or exclude file named name.
func scanEntries(r io.Reader, name string, f func(line int, s string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for line := 1; sc.Scan(); line++ {
		if s := entryText(sc.Text()); s != "" {
			f(line, s)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	return nil
}

// entryText returns a line without its comment and surrounding whitespace.
func entryText(line string) string {
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	return strings.TrimSpace(line)
}

// isHostname reports whether s is a syntactically valid hostname: dot
// separated labels of letters, digits, '-' and '_', and an optional final
// dot.
func isHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// neverRoutable says why an explicit destination is never traced, or
// returns "". 127.0.0.0/8 and ::1 are not included: local addresses can be
// traced.
func neverRoutable(a netip.Addr) string {
	if a.Is4() {
		switch x := u32Of(a); {
		case x>>24 == 0:
			return "this network (0.0.0.0/8)"
		case x == 0xffffffff:
			return "limited broadcast"
		case x>>28 == 0xe:
			return "multicast (224.0.0.0/4)"
		case x>>28 == 0xf:
			return "reserved (240.0.0.0/4)"
		}
		return ""
	}
	switch {
	case a.IsUnspecified():
		return "unspecified address (::/128)"
	case a.Is4In6():
		return fmt.Sprintf("IPv4-mapped (::ffff:0:0/96): give it as %s", a.Unmap())
	case a.IsMulticast():
		return "multicast (ff00::/8)"
	}
	return ""
}
