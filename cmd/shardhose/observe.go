package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/consumer"
	"github.com/shardhose/shardhose/health"
	"github.com/shardhose/shardhose/hooks"
	"github.com/shardhose/shardhose/internal/awsclient"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/metrics"
)

// observability is what the metrics section builds: the metrics adapter and the health monitor
// (both hooks), the HTTP listener serving them, and the CloudWatch publisher. With the section at
// its defaults it is empty and costs nothing.
type observability struct {
	hooks   hooks.Set
	monitor *health.Monitor // nil without a listener
	server  *http.Server
	addr    string // the listener's address, once bound
	stopPub context.CancelFunc
	pubDone chan struct{}
}

// startObservability builds the adapter and, with metrics.listen, binds the listener (a port in
// use is a start-up error) and serves /metrics, /healthz, /readyz and, with metrics.pprof,
// /debug/pprof/. With metrics.cloudwatch.enabled it starts publishing.
// mem, when set, is exported as shardhose_memory_in_flight_bytes.
func startObservability(cfg config.Config, awsCfg aws.Config, log *slog.Logger, clk clock.Clock, mem *consumer.MemoryBudget) (*observability, error) {
	m := cfg.Metrics
	o := &observability{}
	if m.Listen == "" && !m.CloudWatch.Enabled {
		return o, nil
	}
	sinkTypes := map[string]string{}
	for _, s := range cfg.Sinks {
		sinkTypes[s.Name] = s.Type
	}
	adapter := metrics.New(metrics.Options{Stream: cfg.Stream.StreamName(), DeadLetterDestination: cfg.DeadLetter.Type, Sinks: sinkTypes, Clock: clk})
	o.hooks = append(o.hooks, adapter)
	if mem != nil {
		adapter.TrackMemoryBudget(mem.Used, mem.Limit)
	}

	if m.Listen != "" {
		ln, err := net.Listen("tcp", m.Listen)
		if err != nil {
			return nil, fmt.Errorf("metrics.listen %q: %w", m.Listen, err)
		}
		o.monitor = health.New(clk, m.LivenessTimeout, 2*cfg.Stream.PollInterval)
		o.hooks = append(o.hooks, o.monitor)
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", adapter.Handler())
		o.monitor.Register(mux)
		if m.Pprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		o.addr = ln.Addr().String()
		o.server = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := o.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics and health listener stopped", "error", err)
			}
		}()
		log.Info("serving metrics and health", "address", o.addr, "pprof", m.Pprof)
	}

	if m.CloudWatch.Enabled {
		pub := adapter.NewPublisher(metrics.CloudWatchOptions{
			Client:    awsclient.CloudWatch(awsCfg, cfg.AWS),
			Namespace: m.CloudWatch.Namespace,
			Interval:  m.CloudWatch.Interval,
			Clock:     clk,
			Logger:    log.With("component", "cloudwatch"),
		})
		ctx, cancel := context.WithCancel(context.Background())
		o.stopPub, o.pubDone = cancel, make(chan struct{})
		go func() {
			defer close(o.pubDone)
			pub.Run(ctx)
		}()
		log.Info("publishing metrics to CloudWatch", "namespace", m.CloudWatch.Namespace, "interval", m.CloudWatch.Interval)
	}
	return o, nil
}

// started tells the health monitor that the start-up checks passed.
func (o *observability) started() {
	if o.monitor != nil {
		o.monitor.Started()
	}
}

// draining tells the health monitor that a graceful stop began.
func (o *observability) draining() {
	if o.monitor != nil {
		o.monitor.Draining()
	}
}

// close publishes the last figures to CloudWatch and stops the listener.
func (o *observability) close() {
	if o.stopPub != nil {
		o.stopPub()
		<-o.pubDone
	}
	if o.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = o.server.Shutdown(ctx)
	}
}
