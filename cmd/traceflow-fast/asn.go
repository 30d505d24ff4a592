package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/traceflow-fast/traceflow-fast/analysis/asn"
	"github.com/traceflow-fast/traceflow-fast/annotate"
)

// parseAnnotations loads the AS and IXP tables up front, so that a bad file
// fails before any probe is sent.
func parseAnnotations(c *cli.Context, o *options) error {
	var a annotate.Annotator
	format, err := asn.ParseFormat(c.String("asn-db-format"))
	if err != nil {
		return fmt.Errorf("--asn-db-format %q: must be one of %v", c.String("asn-db-format"), asn.Formats())
	}
	if path := c.String("asn-db"); path != "" {
		if a.ASN, err = asn.Load(path, format); err != nil {
			return fmt.Errorf("--asn-db %w", err)
		}
	} else if c.IsSet("asn-db-format") {
		return fmt.Errorf("--asn-db-format needs --asn-db")
	}
	if path := c.String("ixp-db"); path != "" {
		if a.IXP, err = asn.LoadIXPs(path); err != nil {
			return fmt.Errorf("--ixp-db %w", err)
		}
	}
	server := c.String("rdns-server")
	switch {
	case c.Bool("rdns"):
		if a.RDNS, err = annotate.NewResolver(server); err != nil {
			return fmt.Errorf("--rdns-server %w", err)
		}
	case server != "":
		return fmt.Errorf("--rdns-server needs --rdns")
	}
	if a.ASN != nil || a.IXP != nil || a.RDNS != nil {
		o.annotate = &a
	}
	return nil
}
