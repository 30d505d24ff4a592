package netnstest

import (
	"os"
	"regexp"
	"testing"
)

func TestPrefix(t *testing.T) {
	pat := regexp.MustCompile(`^tfx[0-9]+q[0-9a-f]{6}$`)
	a, b := Prefix("q"), Prefix("q")
	if !pat.MatchString(a) || a == b {
		t.Errorf("Prefix: %q then %q, want two distinct names matching %v", a, b, pat)
	}
	if got := Creator(a + "-prober"); got != os.Getpid() {
		t.Errorf("Creator(%q) = %d, want this process, %d", a+"-prober", got, os.Getpid())
	}
	for _, name := range []string{a, "tf2fac43-prober", "tfdemo1a2b-prober", "tfx12Z0a1b2c-a", "cb12-0a1b2c-other", "tfx0z0a1b2c-a"} {
		if got := Creator(name); got != 0 {
			t.Errorf("Creator(%q) = %d, want 0: not a name a test makes", name, got)
		}
	}
	if got := Creator("cb4242-0a1b2c-bpf"); got != 4242 {
		t.Errorf("Creator(cb4242-0a1b2c-bpf) = %d, want 4242", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("Prefix(\"Q\") did not panic")
		}
	}()
	Prefix("Q")
}
