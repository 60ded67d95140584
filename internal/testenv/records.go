package testenv

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Rec is one record for PutRecords.
type Rec struct {
	// PartitionKey picks the shard by its MD5 hash; empty means the record's index in the slice.
	PartitionKey string
	// ExplicitHashKey, when set, picks the shard instead of the partition key's hash.
	ExplicitHashKey string
	Data            []byte
}

// Put tells where one record landed.
type Put struct {
	ShardID        string
	SequenceNumber string
}

// Kinesis limits for one PutRecords request.
const (
	putRecordsMaxRecords = 500
	putRecordsMaxBytes   = 5 << 20 // data plus partition keys
)

const (
	putTimeout     = 2 * time.Minute // per request of at most 500 records, retries included
	putMaxAttempts = 30
	putMinBackoff  = 20 * time.Millisecond
	putMaxBackoff  = time.Second
)

// PutRecords writes recs to the stream in requests of at most 500 records and 5 MiB, in order,
// retrying the entries a request reports as failed (throttled) with backoff, and returns where
// each record landed: result[i] belongs to recs[i]. Records that share a partition key keep their
// order within their shard unless one of them had to be retried. It fails the test when a
// request fails outright (after the SDK's own retries) or an entry keeps failing.
func PutRecords(t testing.TB, c *kinesis.Client, stream string, recs []Rec) []Put {
	t.Helper()
	ep := baseEndpoint(c.Options().BaseEndpoint)
	out := make([]Put, len(recs))
	for _, ch := range putChunks(recs) {
		if err := putChunk(t.Context(), c, stream, recs, ch, out); err != nil {
			t.Fatalf("put records %d..%d of %d to stream %s at %s: %v", ch[0], ch[1]-1, len(recs), stream, ep, err)
		}
	}
	return out
}

// putChunks splits recs into [start, end) ranges that each fit one PutRecords request.
func putChunks(recs []Rec) [][2]int {
	var chunks [][2]int
	start, size := 0, 0
	for i, r := range recs {
		n := len(r.Data) + len(partitionKey(recs, i))
		if i > start && (i-start == putRecordsMaxRecords || size+n > putRecordsMaxBytes) {
			chunks = append(chunks, [2]int{start, i})
			start, size = i, 0
		}
		size += n
	}
	if start < len(recs) {
		chunks = append(chunks, [2]int{start, len(recs)})
	}
	return chunks
}

func partitionKey(recs []Rec, i int) string {
	if recs[i].PartitionKey != "" {
		return recs[i].PartitionKey
	}
	return strconv.Itoa(i)
}

func putChunk(ctx context.Context, c *kinesis.Client, stream string, recs []Rec, ch [2]int, out []Put) error {
	ctx, cancel := context.WithTimeout(ctx, putTimeout)
	defer cancel()
	pending := make([]int, 0, ch[1]-ch[0])
	for i := ch[0]; i < ch[1]; i++ {
		pending = append(pending, i)
	}
	backoff := putMinBackoff
	for attempt := 1; ; attempt++ {
		entries := make([]ktypes.PutRecordsRequestEntry, len(pending))
		for j, i := range pending {
			entries[j] = ktypes.PutRecordsRequestEntry{
				Data:         recs[i].Data,
				PartitionKey: aws.String(partitionKey(recs, i)),
			}
			if recs[i].ExplicitHashKey != "" {
				entries[j].ExplicitHashKey = aws.String(recs[i].ExplicitHashKey)
			}
		}
		res, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		if err != nil {
			return err
		}
		if len(res.Records) != len(pending) {
			return fmt.Errorf("sent %d records, the response has %d entries", len(pending), len(res.Records))
		}
		failed := pending[:0]
		codes := map[string]int{}
		for j, r := range res.Records {
			i := pending[j]
			if r.ErrorCode != nil {
				failed = append(failed, i)
				codes[aws.ToString(r.ErrorCode)+": "+aws.ToString(r.ErrorMessage)]++
				continue
			}
			out[i] = Put{ShardID: aws.ToString(r.ShardId), SequenceNumber: aws.ToString(r.SequenceNumber)}
		}
		if len(failed) == 0 {
			return nil
		}
		if attempt == putMaxAttempts {
			return fmt.Errorf("%d records still failing after %d attempts: %s", len(failed), attempt, summarize(codes))
		}
		pending = failed
		if err := pause(ctx, backoff); err != nil {
			return fmt.Errorf("%d records failing (%s), gave up waiting: %w", len(failed), summarize(codes), err)
		}
		backoff = min(2*backoff, putMaxBackoff)
	}
}

func summarize(counts map[string]int) string {
	parts := make([]string, 0, len(counts))
	for k, n := range counts {
		parts = append(parts, fmt.Sprintf("%d× %s", n, k))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}
