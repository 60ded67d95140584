package metrics

import (
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/awsclient"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/testenv"
)

// TestCloudWatchPublishesUnderAWSNames publishes to moto's CloudWatch and reads the data points
// back: the recipe's alarm metrics (IteratorAge per stream, DeliveryToS3.DataFreshness per sink)
// under their AWS names and dimensions, and counters as the increase of each interval.
func TestCloudWatchPublishesUnderAWSNames(t *testing.T) {
	env := testenv.Require(t) // skips under -short: it needs moto
	cw := awsclient.CloudWatch(testenv.AWSConfig(t, env.Moto), config.AWS{})
	ns := testenv.UniqueName(t, "shardhose-test")
	now := time.Now().Truncate(time.Second)
	c := clock.NewFake(now)
	a := New(Options{Stream: "orders", DeadLetterDestination: "sqs", Sinks: map[string]string{"lake": "s3"}, Clock: c})
	pub := a.NewPublisher(CloudWatchOptions{Client: cw, Namespace: ns, Interval: time.Second, Clock: c})

	a.OnLeaseTaken("shard-0")
	a.OnLeaseTaken("shard-1")
	a.OnRecordsRead("orders", "shard-0", 100, 1000, 0)
	a.OnRecordsRead("orders", "shard-1", 50, 500, 0)
	a.OnIteratorAge("orders", "shard-0", 1500*time.Millisecond)
	a.OnIteratorAge("orders", "shard-1", 4*time.Second)
	a.OnSinkWrite("lake", 1, now.Add(-90*time.Second), 10)
	a.OnDeadLetter("shard-0", "RetryAttemptsExhausted", 1)
	if err := pub.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second)
	a.OnRecordsRead("orders", "shard-0", 20, 200, 0)
	if err := pub.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}

	stat := func(metric string, s cwtypes.Statistic, dims ...string) (float64, int) {
		t.Helper()
		var d []cwtypes.Dimension
		for i := 0; i < len(dims); i += 2 {
			d = append(d, cwtypes.Dimension{Name: aws.String(dims[i]), Value: aws.String(dims[i+1])})
		}
		out, err := cw.GetMetricStatistics(t.Context(), &cloudwatch.GetMetricStatisticsInput{
			Namespace: aws.String(ns), MetricName: aws.String(metric), Dimensions: d,
			StartTime: aws.Time(now.Add(-time.Hour)), EndTime: aws.Time(now.Add(time.Hour)),
			Period: aws.Int32(3600), Statistics: []cwtypes.Statistic{s},
		})
		if err != nil {
			t.Fatalf("GetMetricStatistics %s: %v", metric, err)
		}
		if len(out.Datapoints) != 1 {
			t.Fatalf("%s %v: %d data points, want 1", metric, dims, len(out.Datapoints))
		}
		p := out.Datapoints[0]
		switch s {
		case cwtypes.StatisticMaximum:
			return aws.ToFloat64(p.Maximum), int(aws.ToFloat64(p.SampleCount))
		default:
			return aws.ToFloat64(p.Sum), int(aws.ToFloat64(p.SampleCount))
		}
	}
	if v, _ := stat("IteratorAge", cwtypes.StatisticMaximum, "StreamName", "orders"); v != 4000 {
		t.Errorf("IteratorAge{StreamName} max = %v ms, want 4000 (the older shard)", v)
	}
	if v, _ := stat("IteratorAge", cwtypes.StatisticMaximum, "ShardId", "shard-0", "StreamName", "orders"); v != 1500 {
		t.Errorf("IteratorAge{StreamName,ShardId=shard-0} max = %v ms, want 1500", v)
	}
	if v, _ := stat("DeliveryToS3.DataFreshness", cwtypes.StatisticMaximum, "SinkName", "lake", "StreamName", "orders"); v != 91 {
		t.Errorf("DeliveryToS3.DataFreshness max = %v s, want 91", v)
	}
	// Counters: shard-0 read 100 then 20 more; the sum over both publications is its total, not
	// 100+120. (moto matches a query's dimensions as a subset, so per-shard series are asked with
	// both of theirs; ListMetrics shows the per-stream series.)
	if v, _ := stat("DataReadFromKinesisStream.Records", cwtypes.StatisticSum, "ShardId", "shard-0", "StreamName", "orders"); v != 120 {
		t.Errorf("DataReadFromKinesisStream.Records{shard-0} sum = %v, want 120", v)
	}
	list, err := cw.ListMetrics(t.Context(), &cloudwatch.ListMetricsInput{Namespace: aws.String(ns), MetricName: aws.String("DataReadFromKinesisStream.Records")})
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]bool{}
	for _, m := range list.Metrics {
		key := ""
		for _, d := range m.Dimensions {
			key += aws.ToString(d.Name) + "=" + aws.ToString(d.Value) + " "
		}
		series[key] = true
	}
	for _, want := range []string{"StreamName=orders ", "ShardId=shard-0 StreamName=orders ", "ShardId=shard-1 StreamName=orders "} {
		if !series[want] {
			t.Errorf("no DataReadFromKinesisStream.Records series with dimensions %q; have %v", want, series)
		}
	}
	if v, _ := stat("DeadLetters", cwtypes.StatisticSum, "Condition", "RetryAttemptsExhausted", "Destination", "sqs", "StreamName", "orders"); v != 1 {
		t.Errorf("DeadLetters sum = %v, want 1", v)
	}

	// GetMetricData reads the same figures.
	out, err := cw.GetMetricData(t.Context(), &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(now.Add(-time.Hour)), EndTime: aws.Time(now.Add(time.Hour)),
		MetricDataQueries: []cwtypes.MetricDataQuery{{Id: aws.String("age"), MetricStat: &cwtypes.MetricStat{
			Metric: &cwtypes.Metric{Namespace: aws.String(ns), MetricName: aws.String("IteratorAge"),
				Dimensions: []cwtypes.Dimension{{Name: aws.String("StreamName"), Value: aws.String("orders")}}},
			Period: aws.Int32(3600), Stat: aws.String("Maximum"),
		}}},
	})
	if err != nil {
		t.Fatalf("GetMetricData: %v", err)
	}
	if len(out.MetricDataResults) != 1 || len(out.MetricDataResults[0].Values) == 0 || slices.Max(out.MetricDataResults[0].Values) != 4000 {
		t.Errorf("GetMetricData IteratorAge: %+v, want a maximum of 4000", out.MetricDataResults)
	}
}
