package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	dto "github.com/prometheus/client_model/go"

	"github.com/shardhose/shardhose/internal/clock"
)

// PutMetricDataAPI is the part of the CloudWatch client the publisher uses.
type PutMetricDataAPI interface {
	PutMetricData(ctx context.Context, in *cloudwatch.PutMetricDataInput, optFns ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error)
}

// CloudWatchOptions configure Publisher.
type CloudWatchOptions struct {
	Client    PutMetricDataAPI
	Namespace string
	// Interval between publications; below a minute data is stored at high resolution (1 s).
	Interval time.Duration
	Clock    clock.Clock
	Logger   *slog.Logger
}

// kind says how a Prometheus series becomes a CloudWatch value.
type kind int

const (
	gauge   kind = iota // the value now
	counter             // the increase since the last publication (CloudWatch sums them)
)

// cwMetric maps one Prometheus metric to its CloudWatch name. Per-shard metrics are also
// published with StreamName alone (the maximum of gauges, the sum of counters) so that an alarm on
// the stream, like Lambda's on a function, needs no per-shard dimension.
type cwMetric struct {
	prom  string
	name  string // "{type}" is replaced by the sink's Firehose destination (S3, HttpEndpoint, ...)
	unit  cwtypes.StandardUnit
	scale float64
	kind  kind
}

// CloudWatchMetrics is the mapping, in the order of docs/operations.md.
var CloudWatchMetrics = []cwMetric{
	{"shardhose_iterator_age_seconds", "IteratorAge", cwtypes.StandardUnitMilliseconds, 1000, gauge},
	{"shardhose_behind_latest_seconds", "MillisBehindLatest", cwtypes.StandardUnitMilliseconds, 1000, gauge},
	{"shardhose_records_read_total", "DataReadFromKinesisStream.Records", cwtypes.StandardUnitCount, 1, counter},
	{"shardhose_bytes_read_total", "DataReadFromKinesisStream.Bytes", cwtypes.StandardUnitBytes, 1, counter},
	{"shardhose_get_records_throttled_total", "ThrottledGetRecords", cwtypes.StandardUnitCount, 1, counter},
	{"shardhose_checkpoint_lag_records", "CheckpointLag", cwtypes.StandardUnitCount, 1, gauge},
	{"shardhose_lease_held", "LeaseHeld", cwtypes.StandardUnitCount, 1, gauge},
	{"shardhose_esm_polled_events_total", "PolledEventCount", cwtypes.StandardUnitCount, 1, counter},
	{"shardhose_esm_filtered_out_events_total", "FilteredOutEventCount", cwtypes.StandardUnitCount, 1, counter},
	{"shardhose_esm_invoked_events_total", "InvokedEventCount", cwtypes.StandardUnitCount, 1, counter},
	{"shardhose_esm_failed_invoke_events_total", "FailedInvokeEventCount", cwtypes.StandardUnitCount, 1, counter},
	{"shardhose_esm_dropped_events_total", "DroppedEventCount", cwtypes.StandardUnitCount, 1, counter},
	{"shardhose_esm_on_failure_destination_delivered_events_total", "OnFailureDestinationDeliveredEventCount", cwtypes.StandardUnitCount, 1, counter},
	{"shardhose_batch_splits_total", "BatchSplits", cwtypes.StandardUnitCount, 1, counter},
	{"shardhose_batch_retries_total", "BatchRetries", cwtypes.StandardUnitCount, 1, counter},
	{"shardhose_dead_letters_total", "DeadLetters", cwtypes.StandardUnitCount, 1, counter},
	{"shardhose_dead_letter_records_total", "DeadLetterRecords", cwtypes.StandardUnitCount, 1, counter},
	{"shardhose_dead_letter_failures_total", "DestinationDeliveryFailures", cwtypes.StandardUnitCount, 1, counter},
	{"shardhose_delivery_records_total", "DeliveryTo{type}.Records", cwtypes.StandardUnitCount, 1, counter},
	{"shardhose_delivery_bytes_total", "DeliveryTo{type}.Bytes", cwtypes.StandardUnitBytes, 1, counter},
	{"shardhose_delivery_success_total", "DeliveryTo{type}.Success", cwtypes.StandardUnitCount, 1, counter},
	{"shardhose_delivery_failures_total", "DeliveryTo{type}.Failures", cwtypes.StandardUnitCount, 1, counter},
	{"shardhose_delivery_data_freshness_seconds", "DeliveryTo{type}.DataFreshness", cwtypes.StandardUnitSeconds, 1, gauge},
	{"shardhose_delivery_retry_seconds", "DeliveryTo{type}.RetrySeconds", cwtypes.StandardUnitSeconds, 1, gauge},
	{"shardhose_sink_paused", "DeliveryTo{type}.Paused", cwtypes.StandardUnitCount, 1, gauge},
	{"shardhose_backup_records_total", "BackupToS3.Records", cwtypes.StandardUnitCount, 1, counter},
	{"shardhose_leases_held", "LeasesHeld", cwtypes.StandardUnitCount, 1, gauge},
	{"shardhose_leases_taken_total", "LeasesTaken", cwtypes.StandardUnitCount, 1, counter},
	{"shardhose_leases_stolen_total", "LeasesStolen", cwtypes.StandardUnitCount, 1, counter},
	{"shardhose_leases_expired_total", "LeasesExpired", cwtypes.StandardUnitCount, 1, counter},
	{"shardhose_leases_lost_total", "LeasesLost", cwtypes.StandardUnitCount, 1, counter},
	{"shardhose_lease_table_failures_total", "LeaseTableFailures", cwtypes.StandardUnitCount, 1, counter},
}

// sinkDestinations are Firehose's metric prefixes per sink type (DeliveryToS3, ...).
var sinkDestinations = map[string]string{
	"s3": "S3", "http": "HttpEndpoint", "opensearch": "AmazonOpenSearchService", "firehose": "Firehose", "file": "File",
}

// dimensionNames turns label names into CloudWatch dimension names.
var dimensionNames = map[string]string{
	"stream": "StreamName", "shard_id": "ShardId", "sink": "SinkName", "condition": "Condition",
	"destination": "Destination", "reason": "Reason", "operation": "Operation", "outcome": "Outcome",
}

// Publisher sends the adapter's figures to CloudWatch every interval. Use one per adapter.
type Publisher struct {
	a    *Adapter
	o    CloudWatchOptions
	last map[string]float64 // counter values at the last publication, by series key
}

// NewPublisher returns a publisher of a's figures.
func (a *Adapter) NewPublisher(o CloudWatchOptions) *Publisher {
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Publisher{a: a, o: o, last: map[string]float64{}}
}

// Run publishes every interval until ctx ends, then once more (within 5 s) so that the counts of
// the last interval are not lost. A failed publication is logged and its counts are sent with
// the next one.
func (p *Publisher) Run(ctx context.Context) {
	t := p.o.Clock.NewTimer(p.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := p.Publish(final); err != nil {
				p.o.Logger.Warn("publishing the last metrics to CloudWatch failed", "error", err)
			}
			return
		case <-t.C():
		}
		if err := p.Publish(ctx); err != nil && ctx.Err() == nil {
			p.o.Logger.Warn("publishing metrics to CloudWatch failed; the counts go with the next publication", "error", err)
		}
		t.Reset(p.o.Interval)
	}
}

// Publish sends one publication: every gauge's value and every counter's increase since the last
// successful one.
func (p *Publisher) Publish(ctx context.Context) error {
	data, seen, err := p.datums()
	if err != nil {
		return err
	}
	for start := 0; start < len(data); start += 1000 { // PutMetricData takes up to 1,000 values
		end := min(start+1000, len(data))
		_, err := p.o.Client.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String(p.o.Namespace), MetricData: data[start:end]})
		if err != nil {
			return fmt.Errorf("cloudwatch PutMetricData (%d values, namespace %s): %w", end-start, p.o.Namespace, err)
		}
	}
	for k, v := range seen {
		p.last[k] = v
	}
	return nil
}

// datums builds the values of one publication and the counter values they were taken from.
func (p *Publisher) datums() ([]cwtypes.MetricDatum, map[string]float64, error) {
	families, err := p.a.reg.Gather()
	if err != nil {
		return nil, nil, fmt.Errorf("gather metrics: %w", err)
	}
	byName := make(map[string]*dto.MetricFamily, len(families))
	for _, f := range families {
		byName[f.GetName()] = f
	}
	now := p.o.Clock.Now()
	var resolution *int32
	if p.o.Interval < time.Minute {
		resolution = aws.Int32(1)
	}
	seen := map[string]float64{}
	var out []cwtypes.MetricDatum
	for _, m := range CloudWatchMetrics {
		f, ok := byName[m.prom]
		if !ok {
			continue
		}
		// perStream aggregates the per-shard series of one stream.
		perStream := map[string]float64{}
		for _, s := range f.GetMetric() {
			var v float64
			if m.kind == counter {
				v = s.GetCounter().GetValue()
			} else {
				v = s.GetGauge().GetValue()
			}
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if _, ok := labels["sink"]; ok {
				// A sink's figures carry the stream too: alarms name both (StreamName, SinkName).
				labels["stream"] = p.a.opts.Stream
			}
			key := m.prom + seriesKey(labels)
			if m.kind == counter {
				seen[key] = v
				v -= p.last[key]
				if v < 0 { // a counter cannot go back; treat as restarted
					v = seen[key]
				}
			}
			name := m.name
			if strings.Contains(name, "{type}") {
				dest, ok := sinkDestinations[p.a.opts.Sinks[labels["sink"]]]
				if !ok {
					dest = "Sink"
				}
				name = strings.ReplaceAll(name, "{type}", dest)
			}
			out = append(out, datum(name, m.unit, v*m.scale, dimensions(labels), now, resolution))
			if _, shard := labels["shard_id"]; shard {
				if m.kind == counter {
					perStream[labels["stream"]] += v
				} else {
					perStream[labels["stream"]] = max(perStream[labels["stream"]], v)
				}
			}
		}
		for stream, v := range perStream {
			out = append(out, datum(m.name, m.unit, v*m.scale, dimensions(map[string]string{"stream": stream}), now, resolution))
		}
	}
	return out, seen, nil
}

func datum(name string, unit cwtypes.StandardUnit, v float64, dims []cwtypes.Dimension, at time.Time, resolution *int32) cwtypes.MetricDatum {
	return cwtypes.MetricDatum{MetricName: aws.String(name), Unit: unit, Value: aws.Float64(v), Dimensions: dims, Timestamp: aws.Time(at), StorageResolution: resolution}
}

func dimensions(labels map[string]string) []cwtypes.Dimension {
	var dims []cwtypes.Dimension
	for _, n := range slices.Sorted(maps.Keys(labels)) {
		dn, ok := dimensionNames[n]
		if !ok || labels[n] == "" {
			continue
		}
		dims = append(dims, cwtypes.Dimension{Name: aws.String(dn), Value: aws.String(labels[n])})
	}
	return dims
}

func seriesKey(labels map[string]string) string {
	var b strings.Builder
	for _, n := range slices.Sorted(maps.Keys(labels)) {
		b.WriteString("|" + n + "=" + labels[n])
	}
	return b.String()
}
