package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/shardhose/shardhose/produce"
	"github.com/shardhose/shardhose/produce/kdg"
)

// pipe is a fake Kinesis and a fake S3 bucket joined by a fake daemon: every record put is
// written to one object at once, except those deliver turns down; deliver may also write a
// record twice.
type pipe struct {
	deliver func(n int, data []byte) int // copies to write; nil writes 1

	mu      sync.Mutex
	objects map[string][]byte
	order   []string
	n       int
}

func (p *pipe) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	out := &kinesis.PutRecordsOutput{FailedRecordCount: aws.Int32(0)}
	for _, e := range in.Records {
		copies := 1
		if p.deliver != nil {
			copies = p.deliver(p.n, e.Data)
		}
		for range copies {
			zw.Write(e.Data)
		}
		p.n++
		out.Records = append(out.Records, types.PutRecordsResultEntry{SequenceNumber: aws.String("1"), ShardId: aws.String("s")})
	}
	zw.Close()
	key := fmt.Sprintf("data/%06d.gz", len(p.order))
	p.objects[key] = buf.Bytes()
	p.order = append(p.order, key)
	return out, nil
}

func (p *pipe) ListObjectsV2(_ context.Context, in *awss3.ListObjectsV2Input, _ ...func(*awss3.Options)) (*awss3.ListObjectsV2Output, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := &awss3.ListObjectsV2Output{}
	for _, k := range p.order {
		if strings.HasPrefix(k, aws.ToString(in.Prefix)) {
			out.Contents = append(out.Contents, s3types.Object{Key: aws.String(k)})
		}
	}
	return out, nil
}

func (p *pipe) GetObject(_ context.Context, in *awss3.GetObjectInput, _ ...func(*awss3.Options)) (*awss3.GetObjectOutput, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.objects[aws.ToString(in.Key)]
	if !ok {
		return nil, errors.New("NoSuchKey")
	}
	return &awss3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(b))}, nil
}

// records yields {"k":n} objects.
type records struct{ n int }

func (r *records) Next() (produce.Entry, error) {
	r.n++
	return produce.Entry{Data: []byte(fmt.Sprintf(`{"k":%d}`, r.n))}, nil
}

func newPipe() *pipe {
	// An object from before the test: it holds an id of this format but is never read.
	old := &bytes.Buffer{}
	zw := gzip.NewWriter(old)
	zw.Write([]byte(`{"shardhose_loadtest_id":"00000000-000000"}`))
	zw.Close()
	return &pipe{objects: map[string][]byte{"data/old.gz": old.Bytes()}, order: []string{"data/old.gz"}}
}

func runPipe(t *testing.T, p *pipe, opts Options) (Report, error) {
	t.Helper()
	opts.Stream, opts.Kinesis, opts.Source = "s", p, &records{}
	opts.Sinks = []Sink{{Name: "archive", Client: p, Bucket: "b", Prefix: "data/", Compression: "GZIP"}}
	opts.PollInterval = 5 * time.Millisecond
	if opts.Count == 0 {
		opts.Count = 1200
	}
	return Run(t.Context(), opts)
}

func TestRunFindsEveryRecord(t *testing.T) {
	p := newPipe()
	rep, err := runPipe(t, p, Options{Settle: time.Minute})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Sent != 1200 || rep.Delivered != 1200 || rep.Lost != 0 || rep.Duplicates != 0 || rep.DeadLettered != 0 {
		t.Errorf("report %+v, want 1200 sent and delivered", rep)
	}
	if rep.Objects != 3 { // 1200 records in calls of 500: three objects; the old one is not read
		t.Errorf("read %d objects, want the 3 new ones", rep.Objects)
	}
	if rep.LatencyP50 == nil || *rep.LatencyP50 < 0 || rep.IteratorAgeMax != nil || rep.IteratorAgeErr != "no metrics endpoint configured" {
		t.Errorf("latency %v, iterator age %v (%q)", rep.LatencyP50, rep.IteratorAgeMax, rep.IteratorAgeErr)
	}
	// Each record got the id field first, the rest as rendered.
	zr, _ := gzip.NewReader(bytes.NewReader(p.objects["data/000001.gz"]))
	data, _ := io.ReadAll(zr)
	if want := `{"shardhose_loadtest_id":"` + rep.RunID + `-000000","k":1}`; !bytes.HasPrefix(data, []byte(want)) {
		t.Errorf("first record %.80s, want it to start %s", data, want)
	}
	if s := rep.String(); !strings.Contains(s, "lost           0") || !strings.Contains(s, "iterator age   n/a (no metrics endpoint configured)") ||
		!strings.Contains(s, "daemon         CPU n/a (n/a of one core), peak RSS n/a") {
		t.Errorf("report text:\n%s", s)
	}
}

func TestRunCountsLostDuplicatedAndDeadLettered(t *testing.T) {
	p := newPipe()
	p.deliver = func(n int, _ []byte) int {
		switch n {
		case 7, 700: // never delivered; 700 is in a dead letter
			return 0
		case 9:
			return 3
		}
		return 1
	}
	var dlqCalls int
	rep, err := runPipe(t, p, Options{Settle: 2 * time.Second,
		DeadLetters: func(context.Context) ([][]byte, error) {
			dlqCalls++
			p.mu.Lock()
			defer p.mu.Unlock()
			// The dead letter holds record 700 as it was sent (the test knows the run id only
			// from the objects, so it takes it from record 0's id).
			zr, _ := gzip.NewReader(bytes.NewReader(p.objects["data/000001.gz"]))
			data, _ := io.ReadAll(zr)
			runID := string(data[len(`{"shardhose_loadtest_id":"`):][:8])
			return [][]byte{[]byte(`{"shardhose_loadtest_id":"` + runID + `-000700","k":701}`)}, nil
		}})
	if !errors.Is(err, ErrLost) || !strings.Contains(err.Error(), "1 of 1200 records reached no sink and no dead letter") {
		t.Fatalf("Run error %v, want ErrLost for 1 record", err)
	}
	if rep.Delivered != 1198 || rep.DeadLettered != 1 || rep.Lost != 1 || rep.Duplicates != 2 {
		t.Errorf("delivered %d, dead-lettered %d, lost %d, duplicates %d; want 1198, 1, 1, 2", rep.Delivered, rep.DeadLettered, rep.Lost, rep.Duplicates)
	}
	if len(rep.LostIDs) != 1 || rep.LostIDs[0] != rep.RunID+"-000007" {
		t.Errorf("lost ids %v, want record 7", rep.LostIDs)
	}
	if dlqCalls == 0 {
		t.Error("the dead letters were never read")
	}
}

func TestRunInterruptedCountsUncheckedNotLost(t *testing.T) {
	p := newPipe()
	p.deliver = func(int, []byte) int { return 0 } // nothing arrives
	ctx, cancel := context.WithCancel(t.Context())
	rep, err := Run(ctx, Options{Stream: "s", Kinesis: p, Source: &records{}, Count: 10, Settle: time.Hour,
		Sinks:        []Sink{{Name: "a", Client: p, Bucket: "b", Compression: "GZIP"}},
		PollInterval: 5 * time.Millisecond,
		// The first dead-letter read comes once sending is done: interrupt the test there.
		DeadLetters: func(context.Context) ([][]byte, error) { cancel(); return nil, nil },
	})
	if rep.Sent != 10 || rep.Lost != 0 || rep.Unchecked != 10 || err == nil || errors.Is(err, ErrLost) ||
		!strings.Contains(err.Error(), "interrupted with 10 records not yet seen") {
		t.Errorf("interrupted run: %+v, %v; want 10 unchecked, none lost", rep, err)
	}
}

func TestRunRefusesRecordsThatAreNotObjects(t *testing.T) {
	p := newPipe()
	rep, err := Run(t.Context(), Options{Stream: "s", Kinesis: p, Count: 5, Settle: time.Second,
		Source:       &fixedSource{data: []byte("plain text")},
		Sinks:        []Sink{{Name: "a", Client: p, Bucket: "b", Compression: "GZIP"}},
		PollInterval: 5 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "record 0 is not a JSON object") || rep.Sent != 0 {
		t.Errorf("Run = %+v, %v; want a refusal before anything is sent", rep, err)
	}
}

func TestCheckTemplates(t *testing.T) {
	obj, _ := kdg.Parse("obj.tmpl", ` {"a":"{{random.uuid}}"}`)
	text, _ := kdg.Parse("log.tmpl", `{{internet.ip}} - GET /`)
	if err := CheckTemplates([]*kdg.Template{obj}); err != nil {
		t.Errorf("an object template: %v", err)
	}
	if err := CheckTemplates([]*kdg.Template{obj, text}); err == nil || !strings.Contains(err.Error(), "template log.tmpl renders") {
		t.Errorf("a text template: %v, want an error naming it", err)
	}
}

type fixedSource struct{ data []byte }

func (f *fixedSource) Next() (produce.Entry, error) { return produce.Entry{Data: f.data}, nil }

func TestRunValidates(t *testing.T) {
	_, err := Run(t.Context(), Options{})
	for _, want := range []string{"stream:", "a Kinesis client and a record source", "sinks: the load test checks S3 sinks", "duration or a count"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Run with no options: %v, want %q", err, want)
		}
	}
}

func TestStamp(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":1}`:       `{"shardhose_loadtest_id":"r-000000","a":1}`,
		" \n{ \"a\":1}": `{"shardhose_loadtest_id":"r-000000", "a":1}`,
		`{}`:            `{"shardhose_loadtest_id":"r-000000"}`,
		"{\n}":          "{\"shardhose_loadtest_id\":\"r-000000\"\n}",
	} {
		s := &stampSource{inner: &fixedSource{data: []byte(in)}, runID: "r"}
		e, err := s.Next()
		if err != nil || string(e.Data) != want {
			t.Errorf("stamp %q = %q, %v; want %q", in, e.Data, err, want)
		}
	}
}

func TestStaticPrefix(t *testing.T) {
	for in, want := range map[string]string{"": "", "load/": "load/", "a/!{timestamp:yyyy}/x": "a/", "!{partitionKeyFromQuery:k}/": ""} {
		if got := StaticPrefix(in); got != want {
			t.Errorf("StaticPrefix(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDecompress(t *testing.T) {
	plain := []byte(`{"shardhose_loadtest_id":"r-000001"}`)
	var gz, sn bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	sw := s2.NewWriter(&sn, s2.WriterSnappyCompat())
	sw.Write(plain)
	sw.Close()
	enc, _ := zstd.NewWriter(nil)
	zs := enc.EncodeAll(plain, nil)
	for comp, raw := range map[string][]byte{"GZIP": gz.Bytes(), "SNAPPY": sn.Bytes(), "ZSTD": zs, "UNCOMPRESSED": plain, "": plain} {
		got, err := decompress(comp, raw)
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("decompress %s = %q, %v", comp, got, err)
		}
	}
	if _, err := decompress("GZIP", plain); err == nil {
		t.Error("decompressing plain text as GZIP succeeded")
	}
}

func TestScrapeIteratorAge(t *testing.T) {
	for _, c := range []struct {
		body string
		want time.Duration
		err  string
	}{
		{"# TYPE shardhose_iterator_age_milliseconds gauge\nshardhose_iterator_age_milliseconds{shard=\"a\"} 20\nshardhose_iterator_age_milliseconds{shard=\"b\"} 1500\n", 1500 * time.Millisecond, ""},
		{"# TYPE x_iterator_age_seconds gauge\nx_iterator_age_seconds 2.5\n", 2500 * time.Millisecond, ""},
		{"millis_behind_latest{shard=\"a\"} 300\n", 300 * time.Millisecond, ""},
		{"# TYPE other gauge\nother 1\n", 0, "no iterator_age or millis_behind_latest gauge"},
		{"not { prometheus", 0, "not Prometheus text format"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, c.body) }))
		got, err := ScrapeIteratorAge(t.Context(), srv.Client(), srv.URL)
		srv.Close()
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("body %q: %v, %v; want an error with %q", c.body, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("body %q: %v, %v; want %v", c.body, got, err, c.want)
		}
	}
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	if _, err := ScrapeIteratorAge(t.Context(), http.DefaultClient, url); err == nil {
		t.Error("an endpoint that is gone gave no error")
	}
}

func TestReadProcAndParse(t *testing.T) {
	cpu, err := parseStatCPU([]byte("1234 (shard hose) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100 1000 200"))
	if err != nil || cpu != 3*time.Second {
		t.Errorf("parseStatCPU = %v, %v; want 3s (300 ticks)", cpu, err)
	}
	rss, err := parseStatusHWM([]byte("Name:\tshardhose\nVmPeak:\t 2000 kB\nVmHWM:\t   512 kB\nVmRSS:\t 100 kB\n"))
	if err != nil || rss != 512<<10 {
		t.Errorf("parseStatusHWM = %v, %v", rss, err)
	}
	if _, err := parseStatusHWM([]byte("Name: x\n")); err == nil {
		t.Error("no VmHWM gave no error")
	}
	// This test's own process.
	u, err := ReadProcess(os.Getpid())
	if err != nil || u.PeakRSS <= 0 {
		t.Errorf("ReadProcess(self) = %+v, %v", u, err)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Second)
	}
	for p, want := range map[int]float64{50: 50, 95: 95, 99: 99, 100: 100} {
		if got := percentile(d, p); got == nil || *got != want {
			t.Errorf("p%d = %v, want %v", p, got, want)
		}
	}
	if percentile(nil, 50) != nil {
		t.Error("percentile of nothing is not nil")
	}
}

func TestReadSinkReadsEveryObjectDecompressed(t *testing.T) {
	p := newPipe()
	if _, err := p.PutRecords(t.Context(), &kinesis.PutRecordsInput{Records: []types.PutRecordsRequestEntry{{Data: []byte(`{"a":1}`)}, {Data: []byte(`{"b":2}`)}}}); err != nil {
		t.Fatal(err)
	}
	p.objects["other/x.gz"], p.order = []byte("not read: another prefix"), append(p.order, "other/x.gz")
	got, err := ReadSink(t.Context(), Sink{Name: "archive", Client: p, Bucket: "b", Prefix: "data/", Compression: "GZIP"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"data/old.gz": `{"shardhose_loadtest_id":"00000000-000000"}`, "data/000001.gz": `{"a":1}{"b":2}`}
	if len(got) != len(want) {
		t.Fatalf("ReadSink read %d objects, want %d: %q", len(got), len(want), got)
	}
	for k, w := range want {
		if string(got[k]) != w {
			t.Errorf("object %s = %q, want %q", k, got[k], w)
		}
	}

	p.objects["data/bad.gz"], p.order = []byte("not gzip"), append(p.order, "data/bad.gz")
	if _, err := ReadSink(t.Context(), Sink{Name: "archive", Client: p, Bucket: "b", Prefix: "data/", Compression: "GZIP"}); err == nil || !strings.Contains(err.Error(), "data/bad.gz") {
		t.Errorf("ReadSink with an object that does not decompress: %v, want an error naming it", err)
	}
}
