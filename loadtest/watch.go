package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/shardhose/shardhose/internal/clock"
)

// S3API is the part of the S3 client the load test reads the sinks with; *s3.Client implements it.
type S3API interface {
	ListObjectsV2(ctx context.Context, in *awss3.ListObjectsV2Input, optFns ...func(*awss3.Options)) (*awss3.ListObjectsV2Output, error)
	GetObject(ctx context.Context, in *awss3.GetObjectInput, optFns ...func(*awss3.Options)) (*awss3.GetObjectOutput, error)
}

var _ S3API = (*awss3.Client)(nil)

// Sink is one S3 destination to check: where its objects are and how they are compressed.
type Sink struct {
	Name   string
	Client S3API
	Bucket string
	// Prefix is the key prefix to list: the configured prefix up to its first !{ expression.
	Prefix string
	// Compression is GZIP, SNAPPY, ZSTD or UNCOMPRESSED, as in the sink's configuration.
	Compression string
}

// StaticPrefix returns the part of a Firehose prefix before its first !{…} expression: every
// object of the sink has it.
func StaticPrefix(prefix string) string {
	if i := strings.Index(prefix, "!{"); i >= 0 {
		return prefix[:i]
	}
	return prefix
}

// watcher reads the new objects of the sinks and records which ids of the run each holds and
// when each was first seen. run polls on its own goroutine; the other methods may be called
// from any goroutine.
type watcher struct {
	sinks []Sink
	re    *regexp.Regexp
	clk   clock.Clock
	log   *slog.Logger

	mu        sync.Mutex
	known     []map[string]bool   // per sink: keys read, or there before the test
	count     []map[int]int       // per sink: how many times each id was seen
	firstSeen []map[int]time.Time // per sink: when each id was first seen
	objects   int
}

func newWatcher(sinks []Sink, runID string, clk clock.Clock, log *slog.Logger) *watcher {
	w := &watcher{sinks: sinks, re: idPattern(runID), clk: clk, log: log}
	for range sinks {
		w.known = append(w.known, map[string]bool{})
		w.count = append(w.count, map[int]int{})
		w.firstSeen = append(w.firstSeen, map[int]time.Time{})
	}
	return w
}

// snapshot marks every object already in the sinks as known, so it is not read.
func (w *watcher) snapshot(ctx context.Context) error {
	for i, s := range w.sinks {
		keys, err := list(ctx, s)
		if err != nil {
			return err
		}
		for _, k := range keys {
			w.known[i][k] = true
		}
	}
	return nil
}

// run reads new objects every poll until ctx ends; it returns the first error that is not a
// transient read failure (those are logged and retried on the next poll).
func (w *watcher) run(ctx context.Context, poll time.Duration) error {
	for {
		for i := range w.sinks {
			if err := w.scan(ctx, i); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				w.log.Warn("reading a sink's objects failed; trying again", "sink", w.sinks[i].Name, "err", err)
			}
		}
		if err := clock.Sleep(ctx, w.clk, poll); err != nil {
			return err
		}
	}
}

func (w *watcher) scan(ctx context.Context, i int) error {
	s := w.sinks[i]
	keys, err := list(ctx, s)
	if err != nil {
		return err
	}
	now := w.clk.Now()
	for _, k := range keys {
		w.mu.Lock()
		done := w.known[i][k]
		w.mu.Unlock()
		if done {
			continue
		}
		data, err := read(ctx, s, k)
		var bad *undecodable
		if errors.As(err, &bad) {
			// Not this sink's records (a Firehose error record, another writer's object):
			// reading it again would not help.
			w.log.Warn("skipping an object that does not decompress", "sink", s.Name, "err", err)
			data, err = nil, nil
		}
		if err != nil {
			return err
		}
		ids := w.idsIn(data)
		w.mu.Lock()
		w.known[i][k] = true
		w.objects++
		for _, n := range ids {
			w.count[i][n]++
			if _, ok := w.firstSeen[i][n]; !ok {
				w.firstSeen[i][n] = now
			}
		}
		w.mu.Unlock()
	}
	return nil
}

// idsIn returns the numbers of the run's ids in data, one per occurrence.
func (w *watcher) idsIn(data []byte) []int {
	var out []int
	for _, m := range w.re.FindAllSubmatch(data, -1) {
		n, err := strconv.Atoi(string(m[1]))
		if err == nil {
			out = append(out, n)
		}
	}
	return out
}

// missing counts the ids neither in every sink nor dead-lettered.
func (w *watcher) missing(ids []int, deadLettered map[int]bool) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, id := range ids {
		if seen, _ := w.deliveredAt(id); seen.IsZero() && !deadLettered[id] {
			n++
		}
	}
	return n
}

// deliveredAt returns when id was first seen in the last of the sinks to get it (zero when a
// sink lacks it) and how many extra copies the sinks hold. The caller holds w.mu.
func (w *watcher) deliveredAt(id int) (time.Time, int) {
	var last time.Time
	dups := 0
	inAll := true
	for i := range w.sinks {
		c := w.count[i][id]
		if c == 0 {
			inAll = false
			continue
		}
		dups += c - 1
		if t := w.firstSeen[i][id]; t.After(last) {
			last = t
		}
	}
	if !inAll {
		return time.Time{}, dups
	}
	return last, dups
}

// ReadSink returns every object under the sink's prefix, decompressed, by key: for checking what
// a sink holds once a run is over (Run's own watcher reads only objects that are new during it).
// An object that cannot be read or does not decompress is an error naming it.
func ReadSink(ctx context.Context, s Sink) (map[string][]byte, error) {
	keys, err := list(ctx, s)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(keys))
	for _, k := range keys {
		data, err := read(ctx, s, k)
		if err != nil {
			return nil, err
		}
		out[k] = data
	}
	return out, nil
}

func list(ctx context.Context, s Sink) ([]string, error) {
	var keys []string
	p := awss3.NewListObjectsV2Paginator(s.Client, &awss3.ListObjectsV2Input{Bucket: aws.String(s.Bucket), Prefix: aws.String(s.Prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s (sink %s): %w", s.Bucket, s.Prefix, s.Name, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}

// read returns an object's records, decompressed.
func read(ctx context.Context, s Sink, key string) ([]byte, error) {
	out, err := s.Client.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("get s3://%s/%s: %w", s.Bucket, key, err)
	}
	defer out.Body.Close()
	raw, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("read s3://%s/%s: %w", s.Bucket, key, err)
	}
	data, err := decompress(s.Compression, raw)
	if err != nil {
		return nil, &undecodable{fmt.Errorf("decompress s3://%s/%s as %s: %w", s.Bucket, key, s.Compression, err)}
	}
	return data, nil
}

// undecodable is the error for an object that was read but does not decompress.
type undecodable struct{ err error }

func (e *undecodable) Error() string { return e.err.Error() }
func (e *undecodable) Unwrap() error { return e.err }

func decompress(compression string, raw []byte) ([]byte, error) {
	switch strings.ToUpper(compression) {
	case "", "UNCOMPRESSED":
		return raw, nil
	case "GZIP":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(zr)
	case "SNAPPY":
		return io.ReadAll(s2.NewReader(bytes.NewReader(raw)))
	case "ZSTD":
		zr, err := zstd.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		return io.ReadAll(zr)
	}
	return nil, fmt.Errorf("unknown compression %q", compression)
}
