package getrecords

import (
	"context"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// BenchmarkGetRecords decodes one 10,000-record response of 1 KiB records per operation through
// a whole client call (signing, middleware, decoding), with the SDK's decoder, with Protocol, and
// with CBORProtocol on the same records in CBOR, Data as byte strings (the Java SDK's
// convention) and as base64 text (what kinesalite and kinesis-mock send).
// The HTTP client hands over a canned body, so the figures are the client's CPU alone. Metrics:
// records per CPU-second of the process (user + system, garbage collection included, so a loaded
// machine's waiting does not count), B/record and allocs/record (allocated, not retained).
func BenchmarkGetRecords(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 10))
	const n = 10000
	recs := records(rng, n, 1024)
	body := response(recs, aws.String("AAAAAAAAAAF"), aws.Int64(1000), nil)
	sdk, fast := clients(&cannedHTTP{status: 200, body: body})
	it := aws.String("AAAAAAAAAAF")
	cborBody := cborResponse(recs, it, aws.Int64(1000), false)
	cborText := cborResponse(recs, it, aws.Int64(1000), true)
	for _, c := range []struct {
		name   string
		client interface {
			GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
		}
	}{
		{"sdk", sdk},
		{"fast", fast},
		{"cbor", cborClient(&cannedHTTP{status: 200, header: cborHeader, body: cborBody})},
		{"cbor-base64-text", cborClient(&cannedHTTP{status: 200, header: cborHeader, body: cborText})},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			cpu0 := cpuTime(b)
			for b.Loop() {
				out, err := c.client.GetRecords(ctx, getRecordsInput)
				if err != nil || len(out.Records) != n {
					b.Fatalf("GetRecords: %d records, %v", len(out.Records), err)
				}
			}
			cpu := cpuTime(b) - cpu0
			runtime.ReadMemStats(&after)
			recs := float64(b.N) * n
			b.ReportMetric(recs/cpu.Seconds(), "records/CPU-s")
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/recs, "B/record")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/recs, "allocs/record")
		})
	}
}

// cpuTime is the CPU time the process has used (user + system).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
