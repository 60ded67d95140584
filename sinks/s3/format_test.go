package s3

import (
	"bytes"
	stdgzip "compress/gzip" // the standard library's reader: an independent check of what klauspost wrote
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

// snappyStreamID starts every stream in the Snappy framing format (a stream identifier chunk).
const snappyStreamID = "\xff\x06\x00\x00sNaPpY"

// uuidPattern matches the random (version 4) UUID in object names.
const uuidPattern = `[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}`

// decodeObject decompresses an object by its key's extension.
func decodeObject(t testing.TB, key string, body []byte) []byte {
	t.Helper()
	var r io.Reader
	switch {
	case strings.HasSuffix(key, ".gz"):
		zr, err := stdgzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("gunzip %s: %v", key, err)
		}
		r = zr
	case strings.HasSuffix(key, ".snappy"):
		if !bytes.HasPrefix(body, []byte(snappyStreamID)) {
			t.Fatalf("%s does not start with the Snappy framing format's stream identifier: %q", key, body[:min(len(body), 10)])
		}
		r = snappy.NewReader(bytes.NewReader(body))
	case strings.HasSuffix(key, ".zst"):
		zr, err := zstd.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("open zstd %s: %v", key, err)
		}
		defer zr.Close()
		r = zr
	default:
		return body
	}
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decompress %s: %v", key, err)
	}
	return data
}

// Every compression writes one object with Firehose's extension that decompresses, with an
// independent reader, to exactly the records written, delimited or not.
func TestCompressionRoundTrip(t *testing.T) {
	for _, c := range []struct {
		compression string
		ext         string
	}{
		{CompressionGZIP, ".gz"},
		{CompressionSnappy, ".snappy"},
		{CompressionZSTD, ".zst"},
		{CompressionUncompressed, ""},
	} {
		for _, newline := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/newline=%v", c.compression, newline), func(t *testing.T) {
				ctx := waitCtx(t)
				f := newFakeS3()
				acks := sinktest.NewAckRecorder(t)
				cfg := testConfig(900)
				cfg.Compression = c.compression
				cfg.AppendNewline = newline
				s := newTestSink(t, cfg, f, clock.NewFake(testStart))

				recs := jsonRecords(600) // about 600 KiB: one object, compressible like real events
				var want bytes.Buffer
				for i := range 6 {
					if err := s.Write(ctx, recs[100*i:100*i+100], acks.Done(i)); err != nil {
						t.Fatal(err)
					}
				}
				for _, r := range recs {
					want.Write(r.Data)
					if newline {
						want.WriteByte('\n')
					}
				}
				if err := s.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				if acks.Count() != 6 {
					t.Fatalf("%d writes acknowledged after Flush, want 6", acks.Count())
				}
				objs := f.stored()
				if len(objs) != 1 {
					t.Fatalf("%d objects, want 1", len(objs))
				}
				for key, o := range objs {
					if want := `^2024/05/06/10/test-sink-1-2024-05-06-10-00-00-` + uuidPattern + regexp.QuoteMeta(c.ext) + `$`; !regexp.MustCompile(want).MatchString(key) {
						t.Errorf("key %s does not match %s", key, want)
					}
					if got := decodeObject(t, key, o.body); !bytes.Equal(got, want.Bytes()) {
						t.Fatalf("object holds %d bytes that differ from the %d written", len(got), want.Len())
					}
					if c.compression != CompressionUncompressed && len(o.body)*2 > want.Len() {
						t.Errorf("%s object is %d bytes for %d bytes of records", c.compression, len(o.body), want.Len())
					}
				}
			})
		}
	}
}

// Encoders come from pools; many objects encoded at once must not share state.
func TestConcurrentEncoding(t *testing.T) {
	for _, compression := range []string{CompressionGZIP, CompressionSnappy, CompressionZSTD} {
		t.Run(compression, func(t *testing.T) {
			ctx := waitCtx(t)
			f := newFakeS3()
			acks := sinktest.NewAckRecorder(t)
			cfg := testConfig(0)
			cfg.Compression = compression
			cfg.MaxUploads = 8
			s := newTestSink(t, cfg, f, clock.NewFake(testStart))
			recs := jsonRecords(400)
			for i := range 40 {
				if err := s.Write(ctx, recs[10*i:10*i+10], acks.Done(i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for key, o := range f.stored() {
				for _, line := range strings.Split(strings.TrimSuffix(string(decodeObject(t, key, o.body)), "\n"), "\n") {
					seen[line] = true
				}
			}
			if len(seen) != len(recs) {
				t.Fatalf("%d distinct records in %d objects, want %d", len(seen), len(f.stored()), len(recs))
			}
		})
	}
}
