package metrics

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
)

const (
	alertRules = "../deploy/monitoring/alerts.yaml"
	dashboard  = "../deploy/monitoring/grafana-dashboard.json"
)

// exported returns the name of every series the adapter exports once each hook has been called,
// histograms with their _bucket, _sum and _count series.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	a, _ := newAdapter()
	a.OnRecordsRead("orders", "shard-0", 1, 1, 1)
	a.OnThrottledRead("orders", "shard-0")
	a.OnCheckpoint("orders", "shard-0", "1", 0)
	a.OnIteratorAge("orders", "shard-0", time.Second)
	a.OnCheckpointLag("orders", "shard-0", 1)
	a.OnLeaseTaken("shard-0")
	a.OnLeaseTaken("shard-1")
	a.OnLeaseLost("shard-1", "lease lost")
	a.OnLeaseClaimed("shard-2", "w")
	a.OnLeaseTakenOver("shard-3", "w")
	a.OnLeaseTableFailed("renew", errors.New("x"))
	a.OnHandlerCall("shard-0", 1, time.Millisecond, nil)
	a.OnProcessed("shard-0", 1, 1, 1, 1)
	a.OnBatchSplit("shard-0", 2)
	a.OnBatchRetry("shard-0", 1, 1)
	a.OnGiveUp("shard-0", "RetryAttemptsExhausted", 1)
	a.OnDeadLetter("shard-0", "RetryAttemptsExhausted", 1)
	a.OnDeadLetterFailed("shard-0", "RetryAttemptsExhausted", 1, errors.New("x"))
	a.OnDelivered("lake", 1, 1, time.Millisecond)
	a.OnDeliveryFailed("lake", 1, errors.New("x"))
	a.OnBackedUp("lake", 1)
	fams, err := a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		n := f.GetName()
		names[n] = true
		if f.GetType().String() == "HISTOGRAM" {
			names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
		}
	}
	return names
}

// metricRe finds metric names in a PromQL expression: shardhose's own and Go's and the process's.
var metricRe = regexp.MustCompile(`\b(?:shardhose|go|process)_[a-zA-Z0-9_]+\b`)

func checkExpr(t *testing.T, where, expr string, names map[string]bool) {
	t.Helper()
	found := metricRe.FindAllString(expr, -1)
	if len(found) == 0 {
		t.Errorf("%s: expression %q names no shardhose metric", where, expr)
	}
	for _, n := range found {
		if !names[n] {
			t.Errorf("%s: expression %q uses %s, which the daemon does not export", where, expr, n)
		}
	}
}

// Every alert and dashboard expression uses only metrics the daemon exports.
func TestMonitoringFilesUseExportedMetrics(t *testing.T) {
	names := exported(t)

	raw, err := os.ReadFile(alertRules)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := yaml.Parser().Unmarshal(raw)
	if err != nil {
		t.Fatalf("%s: %v", alertRules, err)
	}
	alerts := map[string]bool{}
	groups, _ := doc["groups"].([]any)
	for _, g := range groups {
		rules, _ := g.(map[string]any)["rules"].([]any)
		for _, r := range rules {
			rule := r.(map[string]any)
			name, _ := rule["alert"].(string)
			expr, _ := rule["expr"].(string)
			alerts[name] = true
			checkExpr(t, alertRules+" "+name, expr, names)
		}
	}
	// The alarms the operations guide promises.
	for _, want := range []string{"ShardhoseIteratorAgeHigh", "ShardhoseDataFreshnessHigh", "ShardhoseDeadLetters", "ShardhoseSinkPaused", "ShardhoseNoLeasesHeld"} {
		if !alerts[want] {
			t.Errorf("%s has no alert %s", alertRules, want)
		}
	}

	raw, err = os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", dashboard, err)
	}
	exprs := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs++
			checkExpr(t, dashboard+" panel "+p.Title, tg.Expr, names)
		}
	}
	if exprs < 10 {
		t.Errorf("%s has %d expressions; expected the whole dashboard", dashboard, exprs)
	}
}

// promtool, when installed (Debian's prometheus package ships it), checks the rules' syntax.
func TestAlertRulesPassPromtool(t *testing.T) {
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus); TestMonitoringFilesUseExportedMetrics still checks the metric names")
	}
	out, err := exec.Command(path, "check", "rules", alertRules).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}
