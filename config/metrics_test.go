package config

import (
	"strings"
	"testing"
	"time"
)

func TestMetricsKeys(t *testing.T) {
	cases := []struct {
		name string
		set  func(c *Config)
		want string // "" = valid
	}{
		{"defaults: off", func(c *Config) {}, ""},
		{"loopback", func(c *Config) { c.Metrics.Listen = "127.0.0.1:9464" }, ""},
		{"all interfaces", func(c *Config) { c.Metrics.Listen = ":9464" }, ""},
		{"IPv6 and a free port", func(c *Config) { c.Metrics.Listen = "[::1]:0" }, ""},
		{"pprof with a listener", func(c *Config) { c.Metrics.Listen = ":9464"; c.Metrics.Pprof = true }, ""},
		{"no port", func(c *Config) { c.Metrics.Listen = "127.0.0.1" }, `metrics.listen: "127.0.0.1" is not host:port: use e.g. "127.0.0.1:9464", ":9464", or "" for off`},
		{"port out of range", func(c *Config) { c.Metrics.Listen = ":70000" }, `metrics.listen: ":70000" has no valid port: allowed 0 to 65535`},
		{"named port", func(c *Config) { c.Metrics.Listen = "localhost:http" }, `metrics.listen: "localhost:http" has no valid port: allowed 0 to 65535`},
		{"pprof alone", func(c *Config) { c.Metrics.Pprof = true }, "metrics.pprof: true needs metrics.listen: the profiler is served on that listener"},
		{"liveness too short", func(c *Config) { c.Metrics.LivenessTimeout = 5 * time.Second }, "metrics.liveness_timeout: 5s is out of range: allowed 10s to 1h (at least 10s and three leases.renew_interval)"},
		{"liveness below three renewals", func(c *Config) {
			c.Leases.LeaseDuration = time.Minute
			c.Leases.RenewInterval = 20 * time.Second
			c.Metrics.LivenessTimeout = 59 * time.Second
		}, "metrics.liveness_timeout: 59s is out of range: allowed 1m0s to 1h"},
		{"liveness too long", func(c *Config) { c.Metrics.LivenessTimeout = 2 * time.Hour }, "metrics.liveness_timeout: 2h0m0s is out of range: allowed 10s to 1h"},
		{"liveness negative", func(c *Config) { c.Metrics.LivenessTimeout = -time.Second }, "metrics.liveness_timeout: -1s is negative"},
		{"AWS namespace", func(c *Config) { c.Metrics.CloudWatch.Namespace = "AWS/Kinesis" }, `metrics.cloudwatch.namespace: "AWS/Kinesis" is not allowed: namespaces starting with "AWS/" are reserved for AWS services`},
		{"empty namespace", func(c *Config) { c.Metrics.CloudWatch.Namespace = "" }, `metrics.cloudwatch.namespace: "" is not a CloudWatch namespace`},
		{"namespace with a bad character", func(c *Config) { c.Metrics.CloudWatch.Namespace = "a|b" }, `metrics.cloudwatch.namespace: "a|b" is not a CloudWatch namespace`},
		{"interval too short", func(c *Config) { c.Metrics.CloudWatch.Interval = 500 * time.Millisecond }, "metrics.cloudwatch.interval: 500ms is out of range: allowed 1s to 1h0m0s"},
		{"cloudwatch endpoint", func(c *Config) { c.AWS.Endpoints.CloudWatch = "localhost:4566" }, `aws.endpoints.cloudwatch: "localhost:4566" is not an endpoint URL`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.set(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("want valid, got:\n%v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error containing %q, got:\n%v", tc.want, err)
			}
		})
	}
}

// SHARDHOSE_METRICS_URL is the load test's variable, not a misspelt metrics key; a real metrics
// key set from the environment works, and a misspelt one is still reported.
func TestMetricsFromTheEnvironment(t *testing.T) {
	path := writeFile(t, minimalFile)
	cfg, err := Load(LoadOptions{Path: path, Environ: envOf(
		"SHARDHOSE_METRICS_URL=http://127.0.0.1:9464/metrics",
		"SHARDHOSE_METRICS__LISTEN=:9464",
		"SHARDHOSE_METRICS__CLOUDWATCH__ENABLED=true",
	)})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Metrics.Listen != ":9464" || !cfg.Metrics.CloudWatch.Enabled {
		t.Errorf("metrics from the environment: %+v", cfg.Metrics)
	}
	_, err = Load(LoadOptions{Path: path, Environ: envOf("SHARDHOSE_METRICS_LISTEN=:9464")})
	if err == nil || !strings.Contains(err.Error(), "SHARDHOSE_METRICS_LISTEN: is not a config key: separate levels with a double underscore, e.g. SHARDHOSE_METRICS__LISTEN") {
		t.Errorf("a misspelt metrics variable: %v", err)
	}
}
