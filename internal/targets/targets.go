// Package targets turns the destinations a user names — command-line
// arguments and target files — into a compact, deduplicated [Set] of IPv4
// addresses, and visits it in a seeded pseudo-random order with a
// [Permutation], without ever materialising the list of addresses.
//
// An entry is an IPv4 address, a hostname or a CIDR prefix. In a file there
// is one entry per line; '#' starts a comment, blank lines and surrounding
// whitespace are ignored. A prefix of length 30 or less stands for its
// addresses but the network and broadcast ones; addresses that are never
// routable (0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/4, 240.0.0.0/4) are dropped
// from prefixes, and an entry naming one of them explicitly is invalid,
// except 127.0.0.0/8 which can be traced locally. Excluded prefixes
// ([Options.Exclude], see [ParseExclude]) are removed from every entry.
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

	// Exclude lists prefixes removed from every destination. Prefixes that
	// are not IPv4 are ignored; host bits are ignored.
	Exclude []netip.Prefix

	// Resolve returns the IPv4 address of a hostname. Nil means the system
	// resolver's first IPv4 address. Every call is bounded by a 5 s timeout;
	// calls run concurrently.
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
	raw     []rng  // every valid entry's addresses, in input order
	given   uint64 // addresses in raw, duplicates included
	names   map[netip.Addr]string
	stats   Stats
	invalid InvalidError
}

// NewBuilder returns an empty Builder.
func NewBuilder(opts Options) *Builder {
	if opts.MaxPrefix == 0 {
		opts.MaxPrefix = DefaultMaxPrefix
	}
	if opts.Resolve == nil {
		opts.Resolve = lookup
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
	if e.host == "" {
		b.add(e)
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
	b.addHost(e.host, addr)
	return nil
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
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for line := 1; sc.Scan(); line++ {
		s := entryText(sc.Text())
		if s == "" {
			continue
		}
		b.stats.Entries++
		e, err := b.parse(s)
		switch {
		case err != nil:
			flag(line, err, false)
		case e.host != "":
			hosts = append(hosts, hostLine{line, e.host})
		default:
			b.add(e)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", name, err)
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
		b.addHost(h.host, addrs[i])
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
	slices.SortFunc(b.raw, func(x, y rng) int { return cmp.Compare(x.lo, y.lo) })
	b.raw = merge(b.raw)
	union := count(b.raw)
	excl := excludeRanges(b.opts.Exclude)
	kept := subtract(make([]rng, 0, len(b.raw)+len(excl)), b.raw, excl)

	st := b.stats
	st.Duplicates = b.given - union
	st.Excluded = union - count(kept)
	s := &Set{spans: make([]span, len(kept)), stats: st}
	var end uint64
	for i, r := range kept {
		end += r.size()
		s.spans[i] = span{lo: r.lo, hi: r.hi, end: end}
	}
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

// add records the addresses of an address or prefix entry.
func (b *Builder) add(e entry) {
	if !e.prefix {
		b.raw = append(b.raw, e.r)
		b.given += e.r.size()
		return
	}
	n := len(b.raw)
	b.raw = subtract(b.raw, []rng{e.r}, unroutable[:])
	kept := count(b.raw[n:])
	b.given += kept
	b.stats.Unroutable += e.r.size() - kept
}

// addHost records the address a hostname resolved to, and the name.
func (b *Builder) addHost(host string, addr netip.Addr) {
	b.add(entry{r: rng{u32(addr), u32(addr)}})
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
		return netip.Addr{}, fmt.Errorf("cannot resolve %q to an IPv4 address: %w", host, err)
	}
	addr = addr.Unmap()
	if !addr.Is4() {
		return netip.Addr{}, fmt.Errorf("%q resolved to %s, not an IPv4 address", host, addr)
	}
	if why := neverRoutable(u32(addr)); why != "" {
		return netip.Addr{}, fmt.Errorf("%q resolved to %s, never routable: %s", host, addr, why)
	}
	return addr, nil
}

// lookup is the default resolver.
func lookup(ctx context.Context, host string) (netip.Addr, error) {
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
	if err != nil {
		return netip.Addr{}, err
	}
	if len(addrs) == 0 {
		return netip.Addr{}, errors.New("no IPv4 address")
	}
	return addrs[0], nil
}

// entry is one parsed destination: a hostname to resolve, or the addresses
// of an address or a prefix.
type entry struct {
	host   string
	r      rng
	prefix bool // r is a prefix's addresses, to be cleared of unroutable ones
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
		if n := uint64(1) << (32 - p.Bits()); n > b.opts.MaxPrefix {
			return entry{}, fmt.Errorf("%s holds %d addresses, more than --max-prefix %d", p, n, b.opts.MaxPrefix)
		}
		r := prefixRange(p)
		if p.Bits() <= 30 {
			r.lo++
			r.hi--
		}
		return entry{r: r, prefix: true}, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if !a.Is4() {
			return entry{}, fmt.Errorf("%s is IPv6, only IPv4 is supported", s)
		}
		if why := neverRoutable(u32(a)); why != "" {
			return entry{}, fmt.Errorf("%s is never routable: %s", s, why)
		}
		return entry{r: rng{u32(a), u32(a)}}, nil
	}
	if strings.Trim(s, "0123456789.") == "" {
		return entry{}, fmt.Errorf("%q is not a valid IPv4 address", s)
	}
	if !isHostname(s) {
		return entry{}, fmt.Errorf("%q is not an IPv4 address, prefix or hostname", s)
	}
	return entry{host: s}, nil
}

// parsePrefix parses an IPv4 prefix without host bits, explaining what is
// wrong otherwise.
func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		i := strings.LastIndexByte(s, '/')
		a, aerr := netip.ParseAddr(s[:i])
		switch {
		case aerr != nil:
			return netip.Prefix{}, fmt.Errorf("%q is not a valid prefix", s)
		case !a.Is4():
			return netip.Prefix{}, fmt.Errorf("%s is IPv6, only IPv4 is supported", s)
		}
		if n, err := strconv.ParseUint(s[i+1:], 10, 8); err == nil && n > 32 {
			return netip.Prefix{}, fmt.Errorf("%s: prefix length must be 0 to 32", s)
		}
		return netip.Prefix{}, fmt.Errorf("%q has an invalid prefix length", s)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%s is IPv6, only IPv4 is supported", s)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%s has host bits set, did you mean %s?", s, m)
	}
	return p, nil
}

// ParseExclude parses an exclude list: an IPv4 prefix or address per line,
// '#' comments and blank lines, as in zmap's blocklist files. Invalid lines
// are reported together in an *InvalidError, as "name:LINE: what is wrong".
func ParseExclude(r io.Reader, name string) ([]netip.Prefix, error) {
	var (
		out     []netip.Prefix
		invalid InvalidError
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for line := 1; sc.Scan(); line++ {
		s := entryText(sc.Text())
		if s == "" {
			continue
		}
		p, err := parseExcludeEntry(s)
		if err != nil {
			invalid.add(fmt.Sprintf("%s:%d: %v", name, line, err))
			continue
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
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
	case !a.Is4():
		return netip.Prefix{}, fmt.Errorf("%s is IPv6, only IPv4 is supported", s)
	}
	return netip.PrefixFrom(a, 32), nil
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

// neverRoutable says why an address is never routable, or returns "".
// 127.0.0.0/8 is not included: local addresses can be traced.
func neverRoutable(a uint32) string {
	switch {
	case a>>24 == 0:
		return "this network (0.0.0.0/8)"
	case a == 0xffffffff:
		return "limited broadcast"
	case a>>28 == 0xe:
		return "multicast (224.0.0.0/4)"
	case a>>28 == 0xf:
		return "reserved (240.0.0.0/4)"
	}
	return ""
}
