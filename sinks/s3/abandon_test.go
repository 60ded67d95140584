package s3

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

// failingEncoder fails to encode any object holding a record whose data contains "unencodable",
// and encodes the others as next does.
type failingEncoder struct{ next encoder }

func (e failingEncoder) encode(buf *bytes.Buffer, recs []*record.Record) ([]rejection, error) {
	for _, r := range recs {
		if bytes.Contains(r.Data, []byte("unencodable")) {
			return nil, errors.New("injected encoder failure")
		}
	}
	return e.next.encode(buf, recs)
}

// An object that cannot be encoded is never acknowledged, but it must give back its upload slot
// and its active partition: with max_uploads 1 and one active partition allowed, every later
// object would otherwise wait (or be refused as a new partition) for ever.
func TestObjectThatCannotBeEncodedFreesItsSlotAndPartition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		f := newFakeS3()
		acks := sinktest.NewAckRecorder(t)
		cfg := partitionedConfig(900, "p/!{partitionKeyFromQuery:event_type}/")
		cfg.AppendNewline = false
		cfg.MaxUploads = 1
		cfg.DynamicPartitioning.MaxActivePartitions = 1
		s := newTestSink(t, cfg, f, clock.NewFake(testStart))
		s.format.enc = failingEncoder{next: s.format.enc}

		// Each record fills a 1 MiB buffer, so its object is sealed at once.
		full := func(typ, x string) string {
			return `{"event_type":"` + typ + `","x":"` + x + `","pad":"` + strings.Repeat("x", 1<<20) + `"}`
		}
		if err := s.Write(ctx, []record.Record{eventRecord(0, full("a", "unencodable"))}, acks.Done(1)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the object of partition a failed to encode
		for i, typ := range []string{"b", "c", "b"} {
			id := i + 2
			result := make(chan error, 1)
			go func() {
				result <- s.Write(ctx, []record.Record{eventRecord(id, full(typ, "fine"))}, acks.Done(id))
			}()
			synctest.Wait()
			select {
			case err := <-result:
				if err != nil {
					t.Fatalf("write %d: %v", id, err)
				}
			default:
				t.Fatalf("write %d (partition %s) still blocked after an object failed to encode: its upload slot was never given back", id, typ)
			}
			if !acks.Acked(id) {
				t.Fatalf("write %d (partition %s) not acknowledged", id, typ)
			}
		}
		if acks.Acked(1) {
			t.Fatal("the write whose object could not be encoded was acknowledged")
		}
		var dirs []string
		for _, k := range keysOf(f.stored()) {
			dirs = append(dirs, k[:strings.Index(k, "/test-sink")])
		}
		if want := []string{"p/b", "p/b", "p/c"}; !slices.Equal(dirs, want) {
			t.Fatalf("objects under %v, want %v (none under the error prefix: a's partition is no longer active)", dirs, want)
		}
		// Cleanup gives up on the object that could not be encoded.
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		_ = s.Close(cancelled)
	})
}
