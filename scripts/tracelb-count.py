#!/usr/bin/env python3
"""Counts scamper tracelb text output: probes, destinations whose first
router fans out to 4 or more next hops, and destinations.

Text output is a "tracelb from S to D, ..., N probes, 95%" line per
destination, then its paths, "10.0.0.1 -> (b1, b2, ...) -> ...".
Prints "PROBES FULL DESTINATIONS".
"""
import re
import sys

probes = full = dsts = 0
for line in open(sys.argv[1]):
    m = re.match(r"tracelb from \S+ to \S+, .*?(\d+) probes", line)
    if m:
        dsts += 1
        probes += int(m.group(1))
        continue
    m = re.match(r"10\.0\.0\.1 -> \(([^)]*)\)", line)
    if m and len(m.group(1).split(",")) >= 4:
        full += 1
print(probes, full, dsts)
