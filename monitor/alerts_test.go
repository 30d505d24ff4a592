package monitor_test

import (
	"os/exec"
	"testing"

	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
)

// The alerting rules shipped (alerts.yml) load in Prometheus and pass
// their unit tests (testdata/alerts_test.yml).
func TestAlertRules(t *testing.T) {
	promtool := testenv.RequireTool(t, "promtool", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "testdata/alerts_test.yml"},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
