package s3

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
)

// countingS3 counts the objects put and throws them away; HeadObject is never needed (no key is
// written twice here).
type countingS3 struct{ objects atomic.Int64 }

func (c *countingS3) PutObject(_ context.Context, in *awss3.PutObjectInput, _ ...func(*awss3.Options)) (*awss3.PutObjectOutput, error) {
	_, err := io.Copy(io.Discard, in.Body)
	c.objects.Add(1)
	return &awss3.PutObjectOutput{}, err
}

func (c *countingS3) HeadObject(context.Context, *awss3.HeadObjectInput, ...func(*awss3.Options)) (*awss3.HeadObjectOutput, error) {
	return nil, fmt.Errorf("countingS3: HeadObject is not expected")
}

// BenchmarkObjectsPerHour measures what exactly_once costs in objects: one simulated hour (a
// fake clock) of a steady, low stream of 1 KiB records (10 a second per shard) through the
// default 5 MiB buffers, at_least_once and exactly_once, for several shard counts and buffering
// intervals. The metrics are the objects written in that hour.
func BenchmarkObjectsPerHour(b *testing.B) {
	data := jsonRecords(1)[0].Data
	for _, shards := range []int{4, 16} {
		for _, interval := range []int{60, 300} {
			for _, delivery := range []string{config.DeliveryAtLeastOnce, config.DeliveryExactlyOnce} {
				b.Run(fmt.Sprintf("shards=%d/interval=%ds/%s", shards, interval, delivery), func(b *testing.B) {
					var objects int64
					for range b.N {
						objects = simulateHour(b, shards, interval, delivery, data)
					}
					b.ReportMetric(float64(objects), "objects/hour")
				})
			}
		}
	}
}

func simulateHour(b *testing.B, shards, interval int, delivery string, data []byte) int64 {
	const perSecond = 10
	clk := clock.NewFake(testStart)
	cfg := config.S3Defaults()
	cfg.Bucket = "bucket"
	cfg.BufferingHints.IntervalInSeconds = interval
	cfg.Delivery = delivery
	c := &countingS3{}
	s, err := New(Options{Name: "bench", Config: cfg, Client: c, Clock: clk})
	if err != nil {
		b.Fatal(err)
	}
	held := func() sinks.LeaseState { return sinks.LeaseHeld }
	for sh := range shards {
		s.OpenShard(fmt.Sprintf("shardId-%012d", sh), record.Position{}, held)
	}
	ctx := context.Background()
	seq := 0
	for sec := range 3600 {
		for sh := range shards {
			recs := make([]record.Record, perSecond)
			for i := range recs {
				seq++
				recs[i] = record.Record{
					ShardID:                     fmt.Sprintf("shardId-%012d", sh),
					SequenceNumber:              fmt.Sprintf("49%054d", seq),
					Data:                        data,
					ApproximateArrivalTimestamp: testStart.Add(time.Duration(sec) * time.Second),
				}
			}
			if err := s.Write(ctx, recs, nil); err != nil {
				b.Fatal(err)
			}
		}
		clk.Advance(time.Second)
		waitSettled(s, clk, time.Duration(interval)*time.Second)
	}
	if err := s.Close(ctx); err != nil {
		b.Fatal(err)
	}
	return c.objects.Load()
}

// waitSettled waits until the sink has sealed every buffer whose interval has passed and written every
// sealed object, so that the simulated clock never runs ahead of the sink's goroutines.
func waitSettled(s *Sink, clk *clock.Fake, interval time.Duration) {
	for {
		s.mu.Lock()
		busy := s.uploads > 0 || len(s.due) > 0
		for _, o := range s.open {
			if !clk.Now().Before(o.oldest.Add(interval)) {
				busy = true
			}
		}
		s.mu.Unlock()
		if !busy {
			return
		}
		runtime.Gosched()
	}
}
