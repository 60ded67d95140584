package dlq

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Letter is one stored dead letter read back by a Reader.
type Letter struct {
	// Message is the dead letter; zero when Err is set.
	Message Message
	// Origin says where it was read, for people: "sqs URL message ID", "s3://bucket/key" or "path:line".
	Origin string
	// Err is set when what was stored there is not a dead letter (it wraps ErrNotDeadLetter).
	// Such an item is reported and left where it is.
	Err error
	// Raw is the item as stored.
	Raw []byte

	id     string // SQS message id
	handle string // SQS receipt handle
}

// Reader yields stored dead letters one at a time. Readers are not safe for concurrent use.
type Reader interface {
	// Next returns the next dead letter, or io.EOF when there are none left. An item that is not
	// a dead letter comes back as a Letter with Err set, not as an error; an error means reading
	// itself failed.
	Next(ctx context.Context) (Letter, error)
	// Done says the letter was handled (its records re-sent) and may be removed: the SQS reader
	// deletes the message; the S3 and file readers leave theirs in place.
	Done(ctx context.Context, l Letter) error
	// Close ends reading. The SQS reader makes every message it received and that was not Done
	// visible again at once.
	Close(ctx context.Context) error
}

// SQSReadAPI is the part of the SQS client SQSReader uses; *sqs.Client implements it.
type SQSReadAPI interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

var _ SQSReadAPI = (*sqs.Client)(nil)

// SQSReaderOptions configures an SQSReader; zero values take the defaults named.
type SQSReaderOptions struct {
	QueueURL string
	// Batch is how many messages one ReceiveMessage asks for, 1 to 10 (default 10). Replay uses 1,
	// so no message waits hidden while others are replayed.
	Batch int
	// VisibilityTimeout is how long a received message stays hidden from other consumers
	// (default 10 minutes): reading must finish with it within that time, or it reappears and
	// may be handled twice.
	VisibilityTimeout time.Duration
	// WaitTime is the long-polling wait of each ReceiveMessage (default 1 s); a receive that
	// waits this long and gets no new message ends the reading, unless messages are hidden.
	WaitTime time.Duration
	// HiddenWait bounds the wait, once no new message comes, for messages of the queue that are
	// hidden but not held by this reader (default VisibilityTimeout plus WaitTime). Such a
	// message was received by another reader, or by a receive whose answer was lost (the SDK
	// retried it after the connection broke): it reappears when its visibility timeout ends.
	HiddenWait time.Duration
	// Logger is told when the reader waits for hidden messages; nil discards it.
	Logger *slog.Logger
}

// ErrHiddenLetters is wrapped by SQSReader.Next's error when messages of the queue stayed hidden
// (in flight for another reader) for all of HiddenWait: they were not read.
var ErrHiddenLetters = errors.New("dead letters hidden by another receive")

// SQSReader reads dead letters from an SQS queue. Messages it receives stay hidden (the
// visibility timeout) until they are deleted by Done or released by Close, so each is read once
// per run; a message that reappears after its timeout is recognized by its id and not returned
// twice. Reading ends when a receive brings no message not seen before and the queue holds no
// hidden message other than this reader's: a message hidden by another receive (one whose
// answer was lost on the way counts) is waited for, up to HiddenWait, so that none is left out
// silently.
type SQSReader struct {
	client      SQSReadAPI
	opts        SQSReaderOptions
	buf         []Letter
	seen        map[string]bool
	pending     map[string]string // message id → latest receipt handle, for received and not Done
	order       []string          // ids in pending, in receive order
	done        bool
	hiddenSince time.Time // when the wait for messages hidden by others began; zero: not waiting
	clear       bool      // the last count found no message hidden by others
}

var _ Reader = (*SQSReader)(nil)

// NewSQSReader returns a reader of the queue opts.QueueURL.
func NewSQSReader(client SQSReadAPI, opts SQSReaderOptions) *SQSReader {
	if opts.Batch < 1 || opts.Batch > 10 {
		opts.Batch = 10
	}
	if opts.VisibilityTimeout <= 0 {
		opts.VisibilityTimeout = 10 * time.Minute
	}
	if opts.WaitTime <= 0 {
		opts.WaitTime = time.Second
	}
	if opts.HiddenWait <= 0 {
		opts.HiddenWait = opts.VisibilityTimeout + opts.WaitTime
	}
	return &SQSReader{client: client, opts: opts, seen: map[string]bool{}, pending: map[string]string{}}
}

// Next returns the next message of the queue; see Reader.
func (r *SQSReader) Next(ctx context.Context) (Letter, error) {
	for len(r.buf) == 0 {
		if r.done {
			return Letter{}, io.EOF
		}
		out, err := r.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:            aws.String(r.opts.QueueURL),
			MaxNumberOfMessages: int32(r.opts.Batch),
			VisibilityTimeout:   int32(min(12*time.Hour, max(time.Second, r.opts.VisibilityTimeout)) / time.Second),
			WaitTimeSeconds:     int32(min(20*time.Second, max(time.Second, r.opts.WaitTime)) / time.Second),
		})
		if err != nil {
			return Letter{}, fmt.Errorf("receive dead letters from sqs queue %s: %w", r.opts.QueueURL, err)
		}
		fresh := 0
		for _, msg := range out.Messages {
			id, handle := aws.ToString(msg.MessageId), aws.ToString(msg.ReceiptHandle)
			if r.seen[id] {
				// Back after its visibility timeout: not returned again, but its new handle is
				// the one that deletes or releases it.
				if _, held := r.pending[id]; held {
					r.pending[id] = handle
				}
				continue
			}
			r.seen[id] = true
			r.pending[id] = handle
			r.order = append(r.order, id)
			fresh++
			raw := []byte(aws.ToString(msg.Body))
			l := Letter{Origin: fmt.Sprintf("sqs %s message %s", r.opts.QueueURL, id), Raw: raw, id: id, handle: handle}
			l.Message, l.Err = ParseMessage(raw)
			r.buf = append(r.buf, l)
		}
		if fresh > 0 {
			r.hiddenSince, r.clear = time.Time{}, false
			continue
		}
		if r.clear && len(out.Messages) == 0 {
			// Nothing was hidden before this receive, and it brought nothing at all. A receive
			// that brought back only messages already read (their replay outlasted the
			// visibility timeout) proves nothing: another may have become visible meanwhile.
			r.done = true
			continue
		}
		hidden, err := r.hiddenByOthers(ctx)
		if err != nil {
			return Letter{}, err
		}
		switch {
		case hidden == 0:
			// A message may have reappeared since the receive: one more receive sees it.
			r.clear = true
		case r.hiddenSince.IsZero():
			r.hiddenSince = time.Now()
			if r.opts.Logger != nil {
				r.opts.Logger.Info("dead-letter queue: messages hidden by another receive; waiting for them to reappear",
					"queue", r.opts.QueueURL, "hidden", hidden, "wait_up_to", r.opts.HiddenWait.String())
			}
		case time.Since(r.hiddenSince) >= r.opts.HiddenWait:
			r.done = true
			return Letter{}, fmt.Errorf("sqs queue %s: %d message(s) still hidden after %s, received by another reader or by a receive whose answer was lost: %w; they were not read (run again once they are visible)",
				r.opts.QueueURL, hidden, r.opts.HiddenWait, ErrHiddenLetters)
		}
	}
	l := r.buf[0]
	r.buf = r.buf[1:]
	return l, nil
}

// hiddenByOthers returns how many of the queue's messages are hidden (in flight) without being
// held by this reader.
func (r *SQSReader) hiddenByOthers(ctx context.Context) (int, error) {
	name := sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible
	out, err := r.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(r.opts.QueueURL), AttributeNames: []sqstypes.QueueAttributeName{name},
	})
	if err != nil {
		return 0, fmt.Errorf("sqs queue %s: count hidden messages: %w", r.opts.QueueURL, err)
	}
	v := out.Attributes[string(name)]
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("sqs queue %s: attribute %s = %q: not a count", r.opts.QueueURL, name, v)
	}
	return max(0, n-len(r.pending)), nil
}

// Done deletes the letter's message from the queue.
func (r *SQSReader) Done(ctx context.Context, l Letter) error {
	handle, ok := r.pending[l.id]
	if !ok {
		return fmt.Errorf("delete %s: not received by this reader, or already deleted", l.Origin)
	}
	if _, err := r.client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(r.opts.QueueURL), ReceiptHandle: aws.String(handle)}); err != nil {
		return fmt.Errorf("delete %s: %w", l.Origin, err)
	}
	delete(r.pending, l.id)
	return nil
}

// Close makes every received message that was not deleted visible again at once. Errors are
// joined; a message whose release failed reappears when its visibility timeout ends.
func (r *SQSReader) Close(ctx context.Context) error {
	var errs []error
	for _, id := range r.order {
		handle, ok := r.pending[id]
		if !ok {
			continue
		}
		_, err := r.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl: aws.String(r.opts.QueueURL), ReceiptHandle: aws.String(handle), VisibilityTimeout: 0,
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("release sqs message %s: %w", id, err))
			continue
		}
		delete(r.pending, id)
	}
	return errors.Join(errs...)
}

// S3ReadAPI is the part of the S3 client S3Reader and Fetcher use; *s3.Client implements it.
type S3ReadAPI interface {
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

var _ S3ReadAPI = (*s3.Client)(nil)

// S3Reader reads dead letters stored as S3 objects under a prefix, one per object, in key
// order (which, with ObjectKey's layout, is time order). Done leaves objects in place.
type S3Reader struct {
	client  S3ReadAPI
	bucket  string
	prefix  string
	keys    []string
	token   *string
	listed  bool // the last page was listed
	started bool
}

var _ Reader = (*S3Reader)(nil)

// NewS3Reader returns a reader of the objects under prefix in bucket.
func NewS3Reader(client S3ReadAPI, bucket, prefix string) *S3Reader {
	return &S3Reader{client: client, bucket: bucket, prefix: prefix}
}

// Next returns the next object's dead letter; see Reader.
func (r *S3Reader) Next(ctx context.Context) (Letter, error) {
	for len(r.keys) == 0 {
		if r.listed {
			return Letter{}, io.EOF
		}
		out, err := r.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
			Bucket: aws.String(r.bucket), Prefix: aws.String(r.prefix), ContinuationToken: r.token,
		})
		if err != nil {
			return Letter{}, fmt.Errorf("list dead letters in s3://%s/%s: %w", r.bucket, r.prefix, err)
		}
		for _, o := range out.Contents {
			if k := aws.ToString(o.Key); !strings.HasSuffix(k, "/") {
				r.keys = append(r.keys, k)
			}
		}
		r.token = out.NextContinuationToken
		r.listed = !aws.ToBool(out.IsTruncated) || r.token == nil
	}
	key := r.keys[0]
	r.keys = r.keys[1:]
	raw, err := getObject(ctx, r.client, r.bucket, key)
	if err != nil {
		return Letter{}, err
	}
	l := Letter{Origin: "s3://" + r.bucket + "/" + key, Raw: raw}
	l.Message, l.Err = ParseMessage(raw)
	return l, nil
}

// Done does nothing: S3 dead letters are kept (remove them with a lifecycle rule or by hand).
func (r *S3Reader) Done(context.Context, Letter) error { return nil }

// Close does nothing.
func (r *S3Reader) Close(context.Context) error { return nil }

// maxObjectBytes bounds how much of an S3 object is read as one dead letter: far above any
// dead letter (10,000 records of 1 MiB base64 would not fit, but such a batch cannot be read
// from Kinesis in one GetRecords call either).
const maxObjectBytes = 1 << 30

func getObject(ctx context.Context, c S3ReadAPI, bucket, key string) ([]byte, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("get object s3://%s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, maxObjectBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read object s3://%s/%s: %w", bucket, key, err)
	}
	if len(b) > maxObjectBytes {
		return nil, fmt.Errorf("object s3://%s/%s: larger than %d bytes: not a dead letter", bucket, key, maxObjectBytes)
	}
	return b, nil
}

// FileReader reads the dead letters of a JSON-lines file, as the file destination writes it.
// Blank lines are skipped. Done leaves lines in place.
type FileReader struct {
	path string
	fh   *os.File
	r    *bufio.Reader
	line int
}

var _ Reader = (*FileReader)(nil)

// NewFileReader opens the file at path.
func NewFileReader(path string) (*FileReader, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	return &FileReader{path: path, fh: fh, r: bufio.NewReaderSize(fh, 1<<20)}, nil
}

// Next returns the next line's dead letter; see Reader. ctx is not consulted: a local read does
// not block for long.
func (r *FileReader) Next(context.Context) (Letter, error) {
	for {
		b, err := r.r.ReadBytes('\n')
		if len(b) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				return Letter{}, io.EOF
			}
			return Letter{}, fmt.Errorf("read dead letters from %s: %w", r.path, err)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return Letter{}, fmt.Errorf("read dead letters from %s: %w", r.path, err)
		}
		r.line++
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		l := Letter{Origin: fmt.Sprintf("%s:%d", r.path, r.line), Raw: b}
		l.Message, l.Err = ParseMessage(b)
		return l, nil
	}
}

// Done does nothing: the file is kept as it is.
func (r *FileReader) Done(context.Context, Letter) error { return nil }

// Close closes the file.
func (r *FileReader) Close(context.Context) error { return r.fh.Close() }
