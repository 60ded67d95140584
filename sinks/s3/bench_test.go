package s3

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/record"
)

// discardS3 accepts every object and throws it away.
type discardS3 struct{ bytes atomic.Int64 }

func (d *discardS3) PutObject(_ context.Context, in *awss3.PutObjectInput, _ ...func(*awss3.Options)) (*awss3.PutObjectOutput, error) {
	n, err := io.Copy(io.Discard, in.Body)
	d.bytes.Add(n)
	return &awss3.PutObjectOutput{}, err
}

// jsonRecords returns n records of about 1 KiB of JSON each, with the mix of repeated keys and
// varying values of typical event data.
func jsonRecords(n int) []record.Record {
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu")
	events := []string{"page_view", "click", "add_to_cart", "purchase", "login", "logout"}
	at := time.Date(2024, time.May, 6, 10, 0, 0, 0, time.UTC)
	recs := make([]record.Record, n)
	for i := range recs {
		var b strings.Builder
		fmt.Fprintf(&b, `{"id":"%016x%016x","ts":"%s","event":%q,"user":{"id":%d,"ip":"10.%d.%d.%d","agent":"Mozilla/5.0 (X11; Linux x86_64)"},"amount":%d.%02d,"tags":[`,
			rng.Uint64(), rng.Uint64(), at.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano),
			events[rng.IntN(len(events))], rng.IntN(1e6), rng.IntN(256), rng.IntN(256), rng.IntN(256), rng.IntN(1000), rng.IntN(100))
		for j := range 8 {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%q", words[rng.IntN(len(words))])
		}
		b.WriteString(`],"message":"`)
		for b.Len() < 1022 {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
		}
		s := b.String()[:1022] + `"}`
		recs[i] = record.Record{
			ShardID:                     "shardId-000000000000",
			SequenceNumber:              fmt.Sprintf("49%054d", i+1),
			Data:                        []byte(s),
			ApproximateArrivalTimestamp: at.Add(time.Duration(i) * time.Millisecond),
		}
	}
	return recs
}

// BenchmarkS3SinkGzip measures one writer feeding the sink batches of 500 records of 1 KiB JSON,
// with the default 5 MiB buffer, GZIP and newlines, and S3 replaced by a discarding client.
func BenchmarkS3SinkGzip(b *testing.B) {
	const batch = 500
	recs := jsonRecords(batch)
	cfg := config.S3Defaults()
	cfg.Bucket = "bench"
	client := &discardS3{}
	s, err := New(Options{Name: "bench", Config: cfg, Client: client, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	var acked atomic.Int64
	done := func() { acked.Add(1) }
	raw := 0
	for _, r := range recs {
		raw += len(r.Data) + 1
	}
	b.SetBytes(int64(raw))
	b.ReportAllocs()
	writes := 0
	for b.Loop() {
		if err := s.Write(ctx, recs, done); err != nil {
			b.Fatal(err)
		}
		writes++
	}
	if err := s.Close(ctx); err != nil {
		b.Fatal(err)
	}
	if acked.Load() != int64(writes) {
		b.Fatalf("%d of %d writes acknowledged", acked.Load(), writes)
	}
	b.ReportMetric(float64(writes*batch)/b.Elapsed().Seconds(), "records/s")
	if written := client.bytes.Load(); written > 0 {
		b.ReportMetric(float64(writes*raw)/float64(written), "ratio")
	}
}
