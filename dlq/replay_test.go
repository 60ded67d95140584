package dlq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardhose/shardhose/internal/retry"
)

// fakeShard serves GetShardIterator and GetRecords over one shard's records, page records per
// call, with an empty answer before every page when gaps is set.
type fakeShard struct {
	seqs   []string
	page   int
	gaps   bool
	closed bool // the shard ends after its last record
	calls  int
}

func (f *fakeShard) GetShardIterator(_ context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	if in.ShardIteratorType != ktypes.ShardIteratorTypeAtSequenceNumber {
		return nil, fmt.Errorf("iterator type %s", in.ShardIteratorType)
	}
	i := 0
	for i < len(f.seqs) && strings.Compare(fmt.Sprintf("%030s", f.seqs[i]), fmt.Sprintf("%030s", aws.ToString(in.StartingSequenceNumber))) < 0 {
		i++
	}
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String(fmt.Sprintf("%d:0", i))}, nil
}

func (f *fakeShard) GetRecords(_ context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	f.calls++
	var pos, gapped int
	fmt.Sscanf(aws.ToString(in.ShardIterator), "%d:%d", &pos, &gapped)
	if f.gaps && gapped == 0 && pos < len(f.seqs) {
		return &kinesis.GetRecordsOutput{NextShardIterator: aws.String(fmt.Sprintf("%d:1", pos)), MillisBehindLatest: aws.Int64(5000)}, nil
	}
	end := min(pos+f.page, len(f.seqs))
	out := &kinesis.GetRecordsOutput{MillisBehindLatest: aws.Int64(int64(len(f.seqs)-end) * 1000)}
	for _, s := range f.seqs[pos:end] {
		out.Records = append(out.Records, ktypes.Record{SequenceNumber: aws.String(s), PartitionKey: aws.String("pk" + s), Data: []byte("d" + s)})
	}
	if !(f.closed && end == len(f.seqs)) {
		out.NextShardIterator = aws.String(fmt.Sprintf("%d:0", end))
	}
	return out, nil
}

func metadataOnly(start, end string) Message {
	return Message{KinesisBatchInfo: KinesisBatchInfo{
		ShardID: testShard, StartSequenceNumber: start, EndSequenceNumber: end,
		StreamARN: "arn:aws:kinesis:us-east-1:000000000000:stream/src",
	}}
}

func TestFetchFromStream(t *testing.T) {
	seqs := make([]string, 30)
	for i := range seqs {
		seqs[i] = strconv.Itoa(100 + i*10) // 100, 110, ..., 390
	}
	ctx := t.Context()
	shard := &fakeShard{seqs: seqs, page: 4, gaps: true}
	f := &Fetcher{Kinesis: shard, PollInterval: time.Microsecond}
	recs, from, err := f.Records(ctx, metadataOnly("150", "290"))
	if err != nil || from != FromStream {
		t.Fatalf("Records: %v, from %s", err, from)
	}
	if len(recs) != 15 || recs[0].SequenceNumber != "150" || recs[14].SequenceNumber != "290" || string(recs[3].Data) != "d180" || recs[3].PartitionKey != "pk180" || recs[3].StreamName != "src" {
		t.Errorf("got %d records, first %+v", len(recs), recs[0])
	}

	cases := []struct {
		name       string
		shard      *fakeShard
		start, end string
		want       string
	}{
		{"start trimmed", &fakeShard{seqs: seqs, page: 10}, "95", "200", "the first record is gone"},
		{"end not yet written", &fakeShard{seqs: seqs, page: 10}, "300", "500", "only up to 390"},
		{"shard ended", &fakeShard{seqs: seqs, page: 10, closed: true}, "300", "500", "the shard ended"},
		{"nothing there", &fakeShard{seqs: nil, page: 10}, "300", "500", "nothing at or after"},
	}
	for _, tc := range cases {
		f := &Fetcher{Kinesis: tc.shard, PollInterval: time.Microsecond}
		_, _, err := f.Records(ctx, metadataOnly(tc.start, tc.end))
		if !errors.Is(err, ErrNotInStream) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrNotInStream saying %q", tc.name, err, tc.want)
		}
	}

	if _, _, err := (&Fetcher{}).Records(ctx, metadataOnly("1", "2")); !errors.Is(err, ErrNoInlineRecords) {
		t.Errorf("no Kinesis client: %v", err)
	}
}

// memReader is a Reader over letters held in memory that records what was Done.
type memReader struct {
	letters []Letter
	done    []string
}

func (r *memReader) Next(context.Context) (Letter, error) {
	if len(r.letters) == 0 {
		return Letter{}, io.EOF
	}
	l := r.letters[0]
	r.letters = r.letters[1:]
	return l, nil
}

func (r *memReader) Done(_ context.Context, l Letter) error {
	r.done = append(r.done, l.Origin)
	return nil
}

func (r *memReader) Close(context.Context) error { return nil }

// fakePut accepts PutRecords calls, failing whole calls that carry a record whose data is in fail.
type fakePut struct {
	mu       sync.Mutex
	got      []string // partitionKey=data
	fail     map[string]error
	notFound bool
}

func (f *fakePut) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.notFound {
		return nil, &ktypes.ResourceNotFoundException{Message: aws.String("Stream nope not found")}
	}
	for _, e := range in.Records {
		if err := f.fail[string(e.Data)]; err != nil {
			return nil, err
		}
	}
	out := &kinesis.PutRecordsOutput{}
	for _, e := range in.Records {
		f.got = append(f.got, aws.ToString(e.PartitionKey)+"="+string(e.Data))
		out.Records = append(out.Records, ktypes.PutRecordsResultEntry{SequenceNumber: aws.String("1"), ShardId: aws.String("s")})
	}
	return out, nil
}

func letterOf(t *testing.T, origin string, f Failure) Letter {
	t.Helper()
	body, err := encode(NewMessage(f))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseMessage(body)
	if err != nil {
		t.Fatal(err)
	}
	return Letter{Origin: origin, Message: m, Raw: body}
}

func TestReplayRemovesOnlyWhatWasSent(t *testing.T) {
	ctx := t.Context()
	a := smallFailure("shardId-a", 3, 2, testTime)
	b := smallFailure("shardId-b", 2, 3, testTime)
	b.Records[1].Data = []byte("poison")
	c := smallFailure("shardId-c", 600, 1, testTime) // two PutRecords calls
	r := &memReader{letters: []Letter{
		letterOf(t, "a", a), letterOf(t, "b", b),
		{Origin: "junk", Err: ErrNotDeadLetter, Raw: []byte("{}")},
		letterOf(t, "c", c),
	}}
	put := &fakePut{fail: map[string]error{"poison": errors.New("InternalFailure")}}
	var results []LetterResult
	st, err := Replay(ctx, ReplayOptions{
		Reader: r, Fetcher: &Fetcher{}, Client: put, Stream: "target",
		Retry:    retry.Policy{Initial: time.Microsecond, MaxAttempts: 2},
		OnLetter: func(lr LetterResult) { results = append(results, lr) },
	})
	if err == nil || !strings.Contains(err.Error(), "2 of 4 dead letters") {
		t.Errorf("Replay error %v, want 2 of 4 not replayed", err)
	}
	if st.Letters != 4 || st.Replayed != 2 || st.Failed != 2 || st.Records != 603 {
		t.Errorf("stats %+v", st)
	}
	if strings.Join(r.done, ",") != "a,c" {
		t.Errorf("Done for %v, want a and c only", r.done)
	}
	if len(put.got) != 603 || put.got[0] != "pk-0=aa" || put.got[3] != "pk-0=a" {
		t.Errorf("put %d records, first %q, fourth %q", len(put.got), put.got[0], put.got[3])
	}
	if len(results) != 4 || results[1].Err == nil || results[2].Err == nil || results[0].From != FromMessage {
		t.Errorf("results %+v", results)
	}
}

func TestReplayStopsWhenTheTargetStreamIsMissing(t *testing.T) {
	r := &memReader{letters: []Letter{letterOf(t, "a", smallFailure("s", 1, 1, testTime)), letterOf(t, "b", smallFailure("s", 1, 1, testTime))}}
	st, err := Replay(t.Context(), ReplayOptions{Reader: r, Fetcher: &Fetcher{}, Client: &fakePut{notFound: true}, Stream: "nope"})
	if !errors.Is(err, ErrTargetStream) {
		t.Fatalf("Replay = %v, want ErrTargetStream", err)
	}
	if st.Letters != 1 || len(r.done) != 0 {
		t.Errorf("read %d letters, Done %v; want 1 read and none done", st.Letters, r.done)
	}
}

func TestReplayDryRunSendsNothing(t *testing.T) {
	r := &memReader{letters: []Letter{letterOf(t, "a", smallFailure("s", 4, 1, testTime))}}
	put := &fakePut{}
	st, err := Replay(t.Context(), ReplayOptions{Reader: r, Fetcher: &Fetcher{}, Client: put, Stream: "t", DryRun: true})
	if err != nil || st.Replayed != 1 || st.Records != 4 || len(put.got) != 0 || len(r.done) != 0 {
		t.Errorf("dry run: %+v, %v, put %d, done %v", st, err, len(put.got), r.done)
	}
}

// A dead letter stored twice (the same requestId in two messages) has its records sent once;
// both copies are removed. A copy of a letter whose replay failed is not a duplicate: it is
// replayed. A dry run counts the records once too.
func TestReplaySendsADuplicateLetterOnce(t *testing.T) {
	a := smallFailure("shardId-a", 3, 2, testTime)
	b := smallFailure("shardId-b", 2, 2, testTime)
	bad := smallFailure("shardId-c", 1, 2, testTime)
	bad.Records[0].Data = []byte("poison")
	letters := func() []Letter {
		return []Letter{letterOf(t, "a", a), letterOf(t, "bad", bad), letterOf(t, "a-copy", a), letterOf(t, "b", b), letterOf(t, "bad-copy", bad)}
	}
	r := &memReader{letters: letters()}
	put := &fakePut{fail: map[string]error{"poison": errors.New("InternalFailure")}}
	var dups []string
	st, err := Replay(t.Context(), ReplayOptions{
		Reader: r, Fetcher: &Fetcher{}, Client: put, Stream: "target",
		Retry: retry.Policy{Initial: time.Microsecond, MaxAttempts: 2},
		OnLetter: func(lr LetterResult) {
			if lr.Duplicate {
				dups = append(dups, lr.Letter.Origin)
			}
		},
	})
	if err == nil {
		t.Error("Replay reported success with the poison letter failing twice")
	}
	if st.Letters != 5 || st.Replayed != 2 || st.Duplicates != 1 || st.Failed != 2 || st.Records != 5 {
		t.Errorf("stats %+v, want 5 letters, 2 replayed, 1 duplicate, 2 failed, 5 records", st)
	}
	if strings.Join(dups, ",") != "a-copy" {
		t.Errorf("duplicates %v, want a-copy only", dups)
	}
	if strings.Join(r.done, ",") != "a,a-copy,b" {
		t.Errorf("Done for %v, want a, a-copy and b", r.done)
	}
	if len(put.got) != 5 {
		t.Errorf("put %d records, want 5 (a's 3 once, b's 2)", len(put.got))
	}

	r = &memReader{letters: letters()}
	st, err = Replay(t.Context(), ReplayOptions{Reader: r, Fetcher: &Fetcher{}, Client: &fakePut{}, Stream: "target", DryRun: true})
	if err != nil || st.Replayed != 3 || st.Duplicates != 2 || st.Records != 6 || len(r.done) != 0 {
		t.Errorf("dry run: %v, stats %+v, done %v; want 3 replayed, 2 duplicates, 6 records, nothing removed", err, st, r.done)
	}
}
