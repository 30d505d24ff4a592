package analysis

import "math"

// LoadBalancer is how a diverge node spread the flows over its responding
// successors. A per-flow load balancer hashes the flows' 5-tuples, which
// differ only in the source port, so each successor should get about the
// same share; Uneven flags a split too lopsided for that.
type LoadBalancer struct {
	Node   NodeID
	TTL    int
	Shares []BranchShare // one per responding successor, in node order
	// Uneven says that a chi-square goodness-of-fit test rejects the
	// uniform split at the 1% level (PValue < UnevenPValue), with at least
	// MinExpectedFlows flows expected on every branch. With fewer flows
	// the test is unreliable and Uneven stays false.
	Uneven bool
	PValue float64 // of the test; 1 for a perfectly even split
}

// BranchShare is the part of a balancer's flows that took one successor.
type BranchShare struct {
	Node     NodeID
	Flows    int
	Fraction float64 // of the flows through the balancer with a responding next hop
}

// The thresholds of LoadBalancer.Uneven.
const (
	UnevenPValue     = 0.01
	MinExpectedFlows = 5
)

// balancers returns a LoadBalancer per diverge node of g; out indexes the
// links from each node (see graphBuilder.out). Flows whose next hop was
// silent are left out: nothing says which branch they took.
func balancers(g *Graph, out []int32) []LoadBalancer {
	lbs := []LoadBalancer{}
	for n := range g.Nodes {
		if !g.Nodes[n].Diverge {
			continue
		}
		links := g.Links[out[n]:out[n+1]]
		lb := LoadBalancer{Node: NodeID(n), TTL: g.Nodes[n].TTL}
		total := 0
		for _, l := range links {
			if !g.Nodes[l.To].Silent {
				lb.Shares = append(lb.Shares, BranchShare{Node: l.To, Flows: len(l.PathIDs)})
				total += len(l.PathIDs)
			}
		}
		counts := make([]int, len(lb.Shares))
		for i := range lb.Shares {
			lb.Shares[i].Fraction = float64(lb.Shares[i].Flows) / float64(total)
			counts[i] = lb.Shares[i].Flows
		}
		var enough bool
		lb.PValue, enough = uniformityPValue(counts)
		lb.Uneven = enough && lb.PValue < UnevenPValue
		lbs = append(lbs, lb)
	}
	return lbs
}

// uniformityPValue tests the counts against a uniform distribution with
// Pearson's chi-square goodness-of-fit test and returns its p-value, and
// whether every category expects at least MinExpectedFlows (the usual
// condition for the chi-square approximation to hold).
func uniformityPValue(counts []int) (p float64, enough bool) {
	k := len(counts)
	total := 0
	for _, c := range counts {
		total += c
	}
	if k < 2 || total == 0 {
		return 1, false
	}
	expected := float64(total) / float64(k)
	stat := 0.0
	for _, c := range counts {
		d := float64(c) - expected
		stat += d * d / expected
	}
	return chiSquareSF(stat, k-1), expected >= MinExpectedFlows
}

// chiSquareSF is the survival function P(X >= x) of the chi-square
// distribution with df degrees of freedom: Q(df/2, x/2), the regularized
// upper incomplete gamma function.
func chiSquareSF(x float64, df int) float64 {
	if df <= 0 || math.IsNaN(x) {
		return math.NaN()
	}
	return gammaQ(float64(df)/2, x/2)
}

// gammaQ returns the regularized upper incomplete gamma function
// Q(a, x) = Γ(a, x) / Γ(a) for a > 0, x >= 0. Below x = a+1 the series of
// P = 1 - Q converges fast; above it, the continued fraction of Q does
// (both from Abramowitz and Stegun 6.5.29 and 6.5.31).
func gammaQ(a, x float64) float64 {
	switch {
	case a <= 0 || math.IsNaN(a) || math.IsNaN(x):
		return math.NaN()
	case x <= 0:
		return 1
	case math.IsInf(x, 1):
		return 0
	case x < a+1:
		return 1 - gammaPSeries(a, x)
	default:
		return gammaQFraction(a, x)
	}
}

const (
	gammaEps   = 1e-15
	gammaIters = 10000
)

// gammaPrefix returns x^a e^-x / Γ(a), computed in logarithms.
func gammaPrefix(a, x float64) float64 {
	lg, _ := math.Lgamma(a)
	return math.Exp(a*math.Log(x) - x - lg)
}

// gammaPSeries returns P(a, x) = x^a e^-x / Γ(a) * Σ_n x^n / (a(a+1)...(a+n)).
func gammaPSeries(a, x float64) float64 {
	term := 1 / a
	sum := term
	for n := 1; n < gammaIters; n++ {
		term *= x / (a + float64(n))
		sum += term
		if math.Abs(term) < math.Abs(sum)*gammaEps {
			break
		}
	}
	return min(sum*gammaPrefix(a, x), 1)
}

// gammaQFraction returns Q(a, x) from its continued fraction
//
//	Q(a, x) = x^a e^-x / Γ(a) * 1/(x+1-a- 1(1-a)/(x+3-a- 2(2-a)/(x+5-a- ...)))
//
// evaluated with the modified Lentz method.
func gammaQFraction(a, x float64) float64 {
	const tiny = 1e-300
	bn := x + 1 - a
	c := 1 / tiny
	d := 1 / bn
	f := d
	for n := 1; n < gammaIters; n++ {
		an := -float64(n) * (float64(n) - a)
		bn += 2
		d = an*d + bn
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = bn + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		delta := c * d
		f *= delta
		if math.Abs(delta-1) < gammaEps {
			break
		}
	}
	return max(f*gammaPrefix(a, x), 0)
}
