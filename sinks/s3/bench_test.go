package s3

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
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

// benchSchema maps jsonRecords to Parquet columns (user and tags are left out).
var benchSchema = []config.SchemaColumn{
	{Name: "id", Type: ColumnString, Required: true},
	{Name: "ts", Type: ColumnTimestampMillis, Required: true},
	{Name: "event", Type: ColumnString, Required: true},
	{Name: "amount", Type: ColumnDouble},
	{Name: "message", Type: ColumnString},
}

// BenchmarkS3Sink measures one writer feeding the sink batches of 500 records of 1 KiB JSON, with
// S3 replaced by a discarding client, for each output format: newline-delimited records
// compressed with each codec (default 5 MiB buffers), and Parquet (64 MiB, its minimum). The
// time of an op includes its share of draining the sink at the end (Close), so records/s and
// MB/s are what the sink sustains, encoding included. Run with -cpu 1 for figures per core.
//
// Metrics: records/s; MB/s of records before encoding; ratio (bytes in / bytes stored);
// alloc-B/rec (bytes allocated per record); peak-heap-MiB (see peakHeap).
func BenchmarkS3Sink(b *testing.B) {
	for _, c := range []struct {
		name string
		set  func(*config.S3Sink)
	}{
		{"GZIP", func(c *config.S3Sink) { c.Compression = CompressionGZIP }},
		{"SNAPPY", func(c *config.S3Sink) { c.Compression = CompressionSnappy }},
		{"ZSTD", func(c *config.S3Sink) { c.Compression = CompressionZSTD }},
		{"UNCOMPRESSED", func(c *config.S3Sink) { c.Compression = CompressionUncompressed }},
		{"PARQUET", func(c *config.S3Sink) {
			c.Compression = CompressionUncompressed
			c.BufferingHints.SizeInMBs = 64
			c.DataFormatConversion = &config.DataFormatConversion{OutputFormat: OutputFormatParquet, Schema: benchSchema}
		}},
		// Dynamic partitioning by the event field (6 partitions) with a jq query, ZSTD.
		{"ZSTD-partitioned", func(c *config.S3Sink) {
			c.Compression = CompressionZSTD
			c.Prefix = "event=!{partitionKeyFromQuery:event}/!{timestamp:yyyy/MM/dd/HH}/"
			c.ErrorOutputPrefix = "errors/!{firehose:error-output-type}/"
			c.DynamicPartitioning = &config.DynamicPartitioning{Enabled: true, Queries: map[string]string{"event": ".event"}}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			cfg := config.S3Defaults()
			cfg.Bucket = "bench"
			c.set(&cfg)
			benchSink(b, cfg)
		})
	}
}

// benchPool is the records the benchmarks write, in batches of benchBatch: 70,000 distinct
// records (about 70 MiB), more than the largest object holds, so that no object (and no
// compression window) ever sees a record twice, as with real data.
var benchPool = sync.OnceValue(func() []record.Record { return jsonRecords(70000) })

const benchBatch = 500

func benchSink(b *testing.B, cfg config.S3Sink) {
	pool := benchPool()
	raw := 0
	for _, r := range pool[:benchBatch] {
		raw += len(r.Data) + 1
	}
	client := &discardS3{}
	s, err := New(Options{Name: "bench", Config: cfg, Client: client, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	var acked atomic.Int64
	done := func() { acked.Add(1) }

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	b.SetBytes(int64(raw))
	b.ReportAllocs()
	b.ResetTimer()
	written := 0 // raw bytes, for the ratio
	for i := range b.N {
		off := (i * benchBatch) % len(pool)
		recs := pool[off : off+benchBatch]
		for j := range recs {
			written += len(recs[j].Data) + 1
		}
		if err := s.Write(ctx, recs, done); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)

	if acked.Load() != int64(b.N) {
		b.Fatalf("%d of %d writes acknowledged", acked.Load(), b.N)
	}
	records := float64(b.N * benchBatch)
	b.ReportMetric(records/b.Elapsed().Seconds(), "records/s")
	if stored := client.bytes.Load(); stored > 0 {
		b.ReportMetric(float64(written)/float64(stored), "ratio")
	}
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/records, "alloc-B/rec")
	b.ReportMetric(peakHeap(b, cfg), "peak-heap-MiB")
}

// peakHeaps caches peakHeap's result per benchmark: the benchmark function runs several times.
var peakHeaps sync.Map

// peakHeap measures, untimed, the most heap a sink of cfg uses while the whole record pool (70
// MiB) goes through it, above what the heap held before (the pool itself). The garbage collector
// runs at GOGC=10 meanwhile, so that the heap in use stays close to what is live: the figure is
// what the sink holds (buffers, encoded bodies, encoders), not what GOGC=100 lets garbage add.
func peakHeap(b *testing.B, cfg config.S3Sink) float64 {
	if v, ok := peakHeaps.Load(b.Name()); ok {
		return v.(float64)
	}
	pool := benchPool()
	old := debug.SetGCPercent(10)
	defer debug.SetGCPercent(old)
	runtime.GC()
	runtime.GC() // a second cycle empties the sync.Pools of earlier runs
	base := heapInUse()
	peak := sampleHeap()
	s, err := New(Options{Name: "bench", Config: cfg, Client: &discardS3{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	for off := 0; off < len(pool); off += benchBatch {
		if err := s.Write(b.Context(), pool[off:off+benchBatch], nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(b.Context()); err != nil {
		b.Fatal(err)
	}
	mib := float64(peak()-min(peak(), base)) / (1 << 20)
	peakHeaps.Store(b.Name(), mib)
	return mib
}

// heapInUse returns the bytes of heap objects, live or not yet swept.
func heapInUse() uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}

// sampleHeap samples heapInUse every 5 ms until the returned function is first called; it
// returns the most seen.
func sampleHeap() func() uint64 {
	read := heapInUse
	var maxSeen atomic.Uint64
	maxSeen.Store(read())
	stop := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if v := read(); v > maxSeen.Load() {
					maxSeen.Store(v)
				}
			}
		}
	}()
	var once sync.Once
	return func() uint64 {
		once.Do(func() { close(stop) })
		<-stopped
		if v := read(); v > maxSeen.Load() {
			maxSeen.Store(v)
		}
		return maxSeen.Load()
	}
}
