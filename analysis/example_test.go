package analysis_test

import (
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// diamond8 feeds a Collector what 8 path IDs see through a 4-way ECMP
// diamond: 10.0.0.1, then one of 10.1.{1..4}.1, then 10.2.0.1, then the
// destination 10.99.0.1 at TTL 4.
func diamond8() *analysis.Trace {
	dst := netip.MustParseAddr("10.99.0.1")
	c := analysis.NewCollector(dst, "dest.example", netip.MustParseAddr("10.0.0.100"), 8, 16, 33452, 33452)
	for p := 1; p <= 8; p++ {
		hops := []string{"10.0.0.1", fmt.Sprintf("10.1.%d.1", (p-1)%4+1), "10.2.0.1"}
		for ttl := 1; ttl <= 6; ttl++ {
			c.Sent(p, ttl)
			rtt := time.Duration(ttl*1000+p*37) * time.Microsecond
			switch {
			case ttl > 3: // the destination answers TTL 4 and the probes in flight
				c.Reply(p, ttl, dst, rtt, 3, 3, true)
			default:
				c.Reply(p, ttl, netip.MustParseAddr(hops[ttl-1]), rtt, 11, 0, false)
			}
		}
	}
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	return c.Trace(start, start.Add(1234500*time.Microsecond), false)
}

func ExampleWriteVert() {
	t := diamond8()
	analysis.WriteVert(os.Stdout, t, analysis.Options{})
	analysis.WriteVert(os.Stdout, t, analysis.Options{Dedup: true})
	// Output:
	// traceflow-fast to dest.example (10.99.0.1) from 10.0.0.100, 8 path IDs, max TTL 16
	// TTL:              | 1                 | 2                 | 3                 | 4                 |
	// Path ID 1         | 10.0.0.1          | 10.1.1.1          | 10.2.0.1          | 10.99.0.1         |
	// Path ID 2         | 10.0.0.1          | 10.1.2.1          | 10.2.0.1          | 10.99.0.1         |
	// Path ID 3         | 10.0.0.1          | 10.1.3.1          | 10.2.0.1          | 10.99.0.1         |
	// Path ID 4         | 10.0.0.1          | 10.1.4.1          | 10.2.0.1          | 10.99.0.1         |
	// Path ID 5         | 10.0.0.1          | 10.1.1.1          | 10.2.0.1          | 10.99.0.1         |
	// Path ID 6         | 10.0.0.1          | 10.1.2.1          | 10.2.0.1          | 10.99.0.1         |
	// Path ID 7         | 10.0.0.1          | 10.1.3.1          | 10.2.0.1          | 10.99.0.1         |
	// Path ID 8         | 10.0.0.1          | 10.1.4.1          | 10.2.0.1          | 10.99.0.1         |
	// 4 distinct paths among 8 path IDs
	// traceflow-fast to dest.example (10.99.0.1) from 10.0.0.100, 8 path IDs, max TTL 16
	// TTL:              | 1                 | 2                 | 3                 | 4                 |
	// Path 1 (IDs 1,5)  | 10.0.0.1 <        | 10.1.1.1          | > 10.2.0.1        | 10.99.0.1         |
	// Path 2 (IDs 2,6)  | 10.0.0.1 <        | 10.1.2.1          | > 10.2.0.1        | 10.99.0.1         |
	// Path 3 (IDs 3,7)  | 10.0.0.1 <        | 10.1.3.1          | > 10.2.0.1        | 10.99.0.1         |
	// Path 4 (IDs 4,8)  | 10.0.0.1 <        | 10.1.4.1          | > 10.2.0.1        | 10.99.0.1         |
	// marks: < paths diverge after this hop, > paths converge at this hop
	// diamond: 10.0.0.1 (TTL 1) -> 10.2.0.1 (TTL 3): width 4, 4 paths
	// RTT min / avg / max:
	//   TTL 1  10.0.0.1      1.037 / 1.167 / 1.296 ms
	//   TTL 2  10.1.1.1      2.037 / 2.111 / 2.185 ms
	//   TTL 2  10.1.2.1      2.074 / 2.148 / 2.222 ms
	//   TTL 2  10.1.3.1      2.111 / 2.185 / 2.259 ms
	//   TTL 2  10.1.4.1      2.148 / 2.222 / 2.296 ms
	//   TTL 3  10.2.0.1      3.037 / 3.167 / 3.296 ms
	//   TTL 4  10.99.0.1     4.037 / 4.167 / 4.296 ms
	//   Path 1 at 10.99.0.1  4.037 / 4.111 / 4.185 ms
	//   Path 2 at 10.99.0.1  4.074 / 4.148 / 4.222 ms
	//   Path 3 at 10.99.0.1  4.111 / 4.185 / 4.259 ms
	//   Path 4 at 10.99.0.1  4.148 / 4.222 / 4.296 ms
	// 4 distinct paths among 8 path IDs
}

func ExampleWriteHoriz() {
	t := diamond8()
	analysis.WriteHoriz(os.Stdout, t, analysis.Options{})
	analysis.WriteHoriz(os.Stdout, t, analysis.Options{Dedup: true})
	// Output:
	// traceflow-fast to dest.example (10.99.0.1) from 10.0.0.100, 8 path IDs, max TTL 16
	// TTL: | Path ID 1         | Path ID 2         | Path ID 3         | Path ID 4         | Path ID 5         | Path ID 6         | Path ID 7         | Path ID 8         |
	// 1    | 10.0.0.1          | 10.0.0.1          | 10.0.0.1          | 10.0.0.1          | 10.0.0.1          | 10.0.0.1          | 10.0.0.1          | 10.0.0.1          |
	// 2    | 10.1.1.1          | 10.1.2.1          | 10.1.3.1          | 10.1.4.1          | 10.1.1.1          | 10.1.2.1          | 10.1.3.1          | 10.1.4.1          |
	// 3    | 10.2.0.1          | 10.2.0.1          | 10.2.0.1          | 10.2.0.1          | 10.2.0.1          | 10.2.0.1          | 10.2.0.1          | 10.2.0.1          |
	// 4    | 10.99.0.1         | 10.99.0.1         | 10.99.0.1         | 10.99.0.1         | 10.99.0.1         | 10.99.0.1         | 10.99.0.1         | 10.99.0.1         |
	// 4 distinct paths among 8 path IDs
	// traceflow-fast to dest.example (10.99.0.1) from 10.0.0.100, 8 path IDs, max TTL 16
	// TTL: | Path 1 (IDs 1,5)  | Path 2 (IDs 2,6)  | Path 3 (IDs 3,7)  | Path 4 (IDs 4,8)  |
	// 1    | 10.0.0.1 <        | 10.0.0.1 <        | 10.0.0.1 <        | 10.0.0.1 <        |
	// 2    | 10.1.1.1          | 10.1.2.1          | 10.1.3.1          | 10.1.4.1          |
	// 3    | > 10.2.0.1        | > 10.2.0.1        | > 10.2.0.1        | > 10.2.0.1        |
	// 4    | 10.99.0.1         | 10.99.0.1         | 10.99.0.1         | 10.99.0.1         |
	// marks: < paths diverge after this hop, > paths converge at this hop
	// diamond: 10.0.0.1 (TTL 1) -> 10.2.0.1 (TTL 3): width 4, 4 paths
	// RTT min / avg / max:
	//   TTL 1  10.0.0.1      1.037 / 1.167 / 1.296 ms
	//   TTL 2  10.1.1.1      2.037 / 2.111 / 2.185 ms
	//   TTL 2  10.1.2.1      2.074 / 2.148 / 2.222 ms
	//   TTL 2  10.1.3.1      2.111 / 2.185 / 2.259 ms
	//   TTL 2  10.1.4.1      2.148 / 2.222 / 2.296 ms
	//   TTL 3  10.2.0.1      3.037 / 3.167 / 3.296 ms
	//   TTL 4  10.99.0.1     4.037 / 4.167 / 4.296 ms
	//   Path 1 at 10.99.0.1  4.037 / 4.111 / 4.185 ms
	//   Path 2 at 10.99.0.1  4.074 / 4.148 / 4.222 ms
	//   Path 3 at 10.99.0.1  4.111 / 4.185 / 4.259 ms
	//   Path 4 at 10.99.0.1  4.148 / 4.222 / 4.296 ms
	// 4 distinct paths among 8 path IDs
}

func ExampleWriteJSON() {
	analysis.WriteJSON(os.Stdout, diamond8(), analysis.Options{})
	// Output:
	// {"destination":"10.99.0.1","name":"dest.example","source":"10.0.0.100","protocol":"udp","max_ttl":16,"start":"2025-03-01T12:00:00Z","duration_ms":1234.500,"partial":false,"probes_sent":48,"replies":48,"flows":[{"path_id":1,"src_port":33453,"dst_port":33452,"reached":true,"reached_ttl":4,"probed_ttl":6,"hops":[{"ttl":1,"addr":"10.0.0.1","rtt_ms":1.037,"icmp_type":11,"icmp_code":0},{"ttl":2,"addr":"10.1.1.1","rtt_ms":2.037,"icmp_type":11,"icmp_code":0},{"ttl":3,"addr":"10.2.0.1","rtt_ms":3.037,"icmp_type":11,"icmp_code":0},{"ttl":4,"addr":"10.99.0.1","rtt_ms":4.037,"icmp_type":3,"icmp_code":3}]},{"path_id":2,"src_port":33454,"dst_port":33452,"reached":true,"reached_ttl":4,"probed_ttl":6,"hops":[{"ttl":1,"addr":"10.0.0.1","rtt_ms":1.074,"icmp_type":11,"icmp_code":0},{"ttl":2,"addr":"10.1.2.1","rtt_ms":2.074,"icmp_type":11,"icmp_code":0},{"ttl":3,"addr":"10.2.0.1","rtt_ms":3.074,"icmp_type":11,"icmp_code":0},{"ttl":4,"addr":"10.99.0.1","rtt_ms":4.074,"icmp_type":3,"icmp_code":3}]},{"path_id":3,"src_port":33455,"dst_port":33452,"reached":true,"reached_ttl":4,"probed_ttl":6,"hops":[{"ttl":1,"addr":"10.0.0.1","rtt_ms":1.111,"icmp_type":11,"icmp_code":0},{"ttl":2,"addr":"10.1.3.1","rtt_ms":2.111,"icmp_type":11,"icmp_code":0},{"ttl":3,"addr":"10.2.0.1","rtt_ms":3.111,"icmp_type":11,"icmp_code":0},{"ttl":4,"addr":"10.99.0.1","rtt_ms":4.111,"icmp_type":3,"icmp_code":3}]},{"path_id":4,"src_port":33456,"dst_port":33452,"reached":true,"reached_ttl":4,"probed_ttl":6,"hops":[{"ttl":1,"addr":"10.0.0.1","rtt_ms":1.148,"icmp_type":11,"icmp_code":0},{"ttl":2,"addr":"10.1.4.1","rtt_ms":2.148,"icmp_type":11,"icmp_code":0},{"ttl":3,"addr":"10.2.0.1","rtt_ms":3.148,"icmp_type":11,"icmp_code":0},{"ttl":4,"addr":"10.99.0.1","rtt_ms":4.148,"icmp_type":3,"icmp_code":3}]},{"path_id":5,"src_port":33457,"dst_port":33452,"reached":true,"reached_ttl":4,"probed_ttl":6,"hops":[{"ttl":1,"addr":"10.0.0.1","rtt_ms":1.185,"icmp_type":11,"icmp_code":0},{"ttl":2,"addr":"10.1.1.1","rtt_ms":2.185,"icmp_type":11,"icmp_code":0},{"ttl":3,"addr":"10.2.0.1","rtt_ms":3.185,"icmp_type":11,"icmp_code":0},{"ttl":4,"addr":"10.99.0.1","rtt_ms":4.185,"icmp_type":3,"icmp_code":3}]},{"path_id":6,"src_port":33458,"dst_port":33452,"reached":true,"reached_ttl":4,"probed_ttl":6,"hops":[{"ttl":1,"addr":"10.0.0.1","rtt_ms":1.222,"icmp_type":11,"icmp_code":0},{"ttl":2,"addr":"10.1.2.1","rtt_ms":2.222,"icmp_type":11,"icmp_code":0},{"ttl":3,"addr":"10.2.0.1","rtt_ms":3.222,"icmp_type":11,"icmp_code":0},{"ttl":4,"addr":"10.99.0.1","rtt_ms":4.222,"icmp_type":3,"icmp_code":3}]},{"path_id":7,"src_port":33459,"dst_port":33452,"reached":true,"reached_ttl":4,"probed_ttl":6,"hops":[{"ttl":1,"addr":"10.0.0.1","rtt_ms":1.259,"icmp_type":11,"icmp_code":0},{"ttl":2,"addr":"10.1.3.1","rtt_ms":2.259,"icmp_type":11,"icmp_code":0},{"ttl":3,"addr":"10.2.0.1","rtt_ms":3.259,"icmp_type":11,"icmp_code":0},{"ttl":4,"addr":"10.99.0.1","rtt_ms":4.259,"icmp_type":3,"icmp_code":3}]},{"path_id":8,"src_port":33460,"dst_port":33452,"reached":true,"reached_ttl":4,"probed_ttl":6,"hops":[{"ttl":1,"addr":"10.0.0.1","rtt_ms":1.296,"icmp_type":11,"icmp_code":0},{"ttl":2,"addr":"10.1.4.1","rtt_ms":2.296,"icmp_type":11,"icmp_code":0},{"ttl":3,"addr":"10.2.0.1","rtt_ms":3.296,"icmp_type":11,"icmp_code":0},{"ttl":4,"addr":"10.99.0.1","rtt_ms":4.296,"icmp_type":3,"icmp_code":3}]}],"unique_paths":[{"hops":["10.0.0.1","10.1.1.1","10.2.0.1","10.99.0.1"],"path_ids":[1,5],"reached":true,"rtt_ms":{"min":4.037,"avg":4.111,"max":4.185}},{"hops":["10.0.0.1","10.1.2.1","10.2.0.1","10.99.0.1"],"path_ids":[2,6],"reached":true,"rtt_ms":{"min":4.074,"avg":4.148,"max":4.222}},{"hops":["10.0.0.1","10.1.3.1","10.2.0.1","10.99.0.1"],"path_ids":[3,7],"reached":true,"rtt_ms":{"min":4.111,"avg":4.185,"max":4.259}},{"hops":["10.0.0.1","10.1.4.1","10.2.0.1","10.99.0.1"],"path_ids":[4,8],"reached":true,"rtt_ms":{"min":4.148,"avg":4.222,"max":4.296}}],"graph":{"nodes":[{"id":0,"addr":"10.0.0.1","ttl":1,"silent":false,"path_ids":[1,2,3,4,5,6,7,8],"destination":false,"diverge":true,"converge":false,"rtt_ms":{"min":1.037,"avg":1.167,"max":1.296}},{"id":1,"addr":"10.1.1.1","ttl":2,"silent":false,"path_ids":[1,5],"destination":false,"diverge":false,"converge":false,"rtt_ms":{"min":2.037,"avg":2.111,"max":2.185}},{"id":2,"addr":"10.1.2.1","ttl":2,"silent":false,"path_ids":[2,6],"destination":false,"diverge":false,"converge":false,"rtt_ms":{"min":2.074,"avg":2.148,"max":2.222}},{"id":3,"addr":"10.1.3.1","ttl":2,"silent":false,"path_ids":[3,7],"destination":false,"diverge":false,"converge":false,"rtt_ms":{"min":2.111,"avg":2.185,"max":2.259}},{"id":4,"addr":"10.1.4.1","ttl":2,"silent":false,"path_ids":[4,8],"destination":false,"diverge":false,"converge":false,"rtt_ms":{"min":2.148,"avg":2.222,"max":2.296}},{"id":5,"addr":"10.2.0.1","ttl":3,"silent":false,"path_ids":[1,2,3,4,5,6,7,8],"destination":false,"diverge":false,"converge":true,"rtt_ms":{"min":3.037,"avg":3.167,"max":3.296}},{"id":6,"addr":"10.99.0.1","ttl":4,"silent":false,"path_ids":[1,2,3,4,5,6,7,8],"destination":true,"diverge":false,"converge":false,"rtt_ms":{"min":4.037,"avg":4.167,"max":4.296}}],"links":[{"from":0,"to":1,"ttl":1,"path_ids":[1,5]},{"from":0,"to":2,"ttl":1,"path_ids":[2,6]},{"from":0,"to":3,"ttl":1,"path_ids":[3,7]},{"from":0,"to":4,"ttl":1,"path_ids":[4,8]},{"from":1,"to":5,"ttl":2,"path_ids":[1,5]},{"from":2,"to":5,"ttl":2,"path_ids":[2,6]},{"from":3,"to":5,"ttl":2,"path_ids":[3,7]},{"from":4,"to":5,"ttl":2,"path_ids":[4,8]},{"from":5,"to":6,"ttl":3,"path_ids":[1,2,3,4,5,6,7,8]}],"diamonds":[{"diverge":0,"converge":5,"first_ttl":1,"last_ttl":3,"max_width":4,"length":2,"paths":4}],"branching":[1,4,1,1],"balancers":[{"node":0,"ttl":1,"shares":[{"node":1,"flows":2,"fraction":0.25},{"node":2,"flows":2,"fraction":0.25},{"node":3,"flows":2,"fraction":0.25},{"node":4,"flows":2,"fraction":0.25}],"uneven":false,"p_value":1}],"per_packet":[]},"summary":"4 distinct paths among 8 path IDs"}
}
