package loadtest

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// ScrapeIteratorAge reads the Prometheus metrics at url and returns the largest iterator age
// among them: the gauges (or untyped samples) whose name contains iterator_age or
// millis_behind_latest, across all their label sets (shards). A name ending in _seconds is read
// as seconds, any other as milliseconds (Kinesis's MillisBehindLatest). An endpoint that does not
// answer, or has no such metric, is an error.
func ScrapeIteratorAge(ctx context.Context, client *http.Client, url string) (time.Duration, error) {
	families, err := Scrape(ctx, client, url)
	if err != nil {
		return 0, err
	}
	found := false
	var age time.Duration
	for name, mf := range families {
		if !strings.Contains(name, "iterator_age") && !strings.Contains(name, "millis_behind_latest") {
			continue
		}
		unit := time.Millisecond
		if strings.HasSuffix(name, "_seconds") {
			unit = time.Second
		}
		for _, m := range mf.GetMetric() {
			v, ok := sampleValue(mf.GetType(), m)
			if !ok || math.IsNaN(v) {
				continue
			}
			found = true
			age = max(age, time.Duration(v*float64(unit)))
		}
	}
	if !found {
		return 0, fmt.Errorf("scrape %s: no iterator_age or millis_behind_latest gauge", url)
	}
	return age, nil
}

func sampleValue(t dto.MetricType, m *dto.Metric) (float64, bool) {
	switch t {
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue(), true
	case dto.MetricType_UNTYPED:
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

// Scrape reads the Prometheus metrics (text format) at url, by metric name. An endpoint that
// does not answer 200, or answers something else than that format, is an error.
func Scrape(ctx context.Context, client *http.Client, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("metrics url %q: %w", url, err)
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: HTTP %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: not Prometheus text format: %w", url, err)
	}
	return families, nil
}
