package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/shardhose/shardhose/internal/lazyregexp"
)

// Metrics configures how shardhose is watched: Prometheus metrics and the health endpoints on one
// HTTP listener, and optionally the same figures published to CloudWatch.
type Metrics struct {
	// Listen is the host:port serving /metrics, /healthz and /readyz; "" (the default) serves
	// nothing. Off by default because several workers often share a host (one fixed port would
	// make all but the first fail to start) and because a listening port is something an operator
	// should choose; 127.0.0.1:9464 keeps it local, :9464 exposes it to the network.
	Listen string `koanf:"listen"`
	// Pprof also serves Go's profiler under /debug/pprof/ on the same listener. It reveals
	// internals and costs CPU while profiling, so it is a separate opt-in; needs Listen.
	Pprof bool `koanf:"pprof"`
	// LivenessTimeout is how long the lease loop, or a shard reader that is not waiting for
	// room, may go without progress before /healthz reports the process wedged (a reader is
	// allowed twice stream.poll_interval more, since it sleeps that long between reads).
	LivenessTimeout time.Duration `koanf:"liveness_timeout"`
	// CloudWatch publishes the figures to CloudWatch (PutMetricData).
	CloudWatch CloudWatchMetrics `koanf:"cloudwatch"`
}

// CloudWatchMetrics publishes metrics to CloudWatch under Lambda's and Firehose's metric names.
type CloudWatchMetrics struct {
	Enabled bool `koanf:"enabled"`
	// Namespace of every metric; it cannot start with "AWS/" (reserved for AWS services).
	Namespace string `koanf:"namespace"`
	// Interval between two publications; below 60s the metrics are stored at high resolution (1s).
	Interval time.Duration `koanf:"interval"`
}

// MetricsDefaults holds the defaults of the metrics keys: nothing served, nothing published.
func MetricsDefaults() Metrics {
	return Metrics{
		LivenessTimeout: 5 * time.Minute,
		CloudWatch:      CloudWatchMetrics{Namespace: "shardhose", Interval: time.Minute},
	}
}

// cloudWatchNamespaceRe is CloudWatch's rule for namespaces: 1 to 255 of these characters.
var cloudWatchNamespaceRe = lazyregexp.NewBounded(`^[A-Za-z0-9.\-_/#: ]+$`, 1, 255)

func (v *checker) metrics(m Metrics, l Leases) {
	const p = "metrics"
	if m.Listen != "" {
		host, port, err := net.SplitHostPort(m.Listen)
		n, perr := strconv.Atoi(port)
		switch {
		case err != nil:
			v.add(p+".listen", strconv.Quote(m.Listen), `is not host:port: use e.g. "127.0.0.1:9464", ":9464", or "" for off`)
		case perr != nil || n < 0 || n > 65535:
			v.add(p+".listen", strconv.Quote(m.Listen), "has no valid port: allowed 0 to 65535")
		case strings.ContainsAny(host, " /"):
			v.add(p+".listen", strconv.Quote(m.Listen), "has no valid host: use an IP address, a host name or nothing (all interfaces)")
		}
	}
	if m.Pprof && m.Listen == "" {
		v.add(p+".pprof", "true", "needs metrics.listen: the profiler is served on that listener")
	}
	// The lease loop passes every renew_interval: the bound must leave room for a few passes. (A
	// shard reader sleeps poll_interval between reads; the health check allows a reader twice
	// that on top, so a long poll_interval needs no longer timeout here.)
	floor := max(10*time.Second, 3*l.RenewInterval)
	switch {
	case m.LivenessTimeout < 0:
		v.negative(p+".liveness_timeout", m.LivenessTimeout)
	case m.LivenessTimeout < floor || m.LivenessTimeout > time.Hour:
		v.add(p+".liveness_timeout", m.LivenessTimeout.String(), fmt.Sprintf(
			"is out of range: allowed %s to 1h (at least 10s and three leases.renew_interval)", floor))
	}
	cw := m.CloudWatch
	switch {
	case !cloudWatchNamespaceRe.MatchString(cw.Namespace):
		v.add(p+".cloudwatch.namespace", strconv.Quote(cw.Namespace), "is not a CloudWatch namespace: 1 to 255 of A-Z a-z 0-9 . - _ / # : and space")
	case strings.HasPrefix(cw.Namespace, "AWS/"):
		v.add(p+".cloudwatch.namespace", strconv.Quote(cw.Namespace), `is not allowed: namespaces starting with "AWS/" are reserved for AWS services`)
	}
	v.durationRange(p+".cloudwatch.interval", cw.Interval, time.Second, time.Hour, "how often the figures are sent")
}
