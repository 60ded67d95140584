package dlq

import (
	"context"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// hiddenQueue is an SQS queue holding one message that another receive took: hidden until
// reappearAfter receives have been made (never when 0), then handed out once.
type hiddenQueue struct {
	body          string
	reappearAfter int
	receives      int
	handedOut     bool
	deleted       bool
}

func (q *hiddenQueue) ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	q.receives++
	if q.reappearAfter > 0 && q.receives > q.reappearAfter && !q.handedOut {
		q.handedOut = true
		return &sqs.ReceiveMessageOutput{Messages: []sqstypes.Message{{MessageId: aws.String("m-1"), ReceiptHandle: aws.String("h-1"), Body: aws.String(q.body)}}}, nil
	}
	return &sqs.ReceiveMessageOutput{}, nil
}

func (q *hiddenQueue) DeleteMessage(context.Context, *sqs.DeleteMessageInput, ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	q.deleted = true
	return &sqs.DeleteMessageOutput{}, nil
}

func (q *hiddenQueue) ChangeMessageVisibility(context.Context, *sqs.ChangeMessageVisibilityInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}

// GetQueueAttributes counts the message as hidden until it was handed out and deleted.
func (q *hiddenQueue) GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	n := 1
	if q.reappearAfter > 0 && q.receives >= q.reappearAfter && !q.handedOut {
		n = 0 // visible again, not yet received
	}
	if q.deleted {
		n = 0
	}
	return &sqs.GetQueueAttributesOutput{Attributes: map[string]string{
		string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible): strconv.Itoa(n),
	}}, nil
}

func TestSQSReaderWaitsForHiddenMessages(t *testing.T) {
	body, err := encode(NewMessage(smallFailure("shardId-000000000001", 2, 10, time.Now())))
	if err != nil {
		t.Fatal(err)
	}
	q := &hiddenQueue{body: string(body), reappearAfter: 3}
	r := NewSQSReader(q, SQSReaderOptions{QueueURL: "https://q/1/dl", HiddenWait: time.Minute})
	l, err := r.Next(t.Context())
	if err != nil || l.Err != nil {
		t.Fatalf("Next: %v %v, want the message that was hidden", err, l.Err)
	}
	if err := r.Done(t.Context(), l); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(t.Context()); !errors.Is(err, io.EOF) {
		t.Fatalf("Next after the only message: %v, want io.EOF", err)
	}
}

func TestSQSReaderFailsWhenMessagesStayHidden(t *testing.T) {
	q := &hiddenQueue{}
	r := NewSQSReader(q, SQSReaderOptions{QueueURL: "https://q/1/dl", HiddenWait: 20 * time.Millisecond})
	_, err := r.Next(t.Context())
	if !errors.Is(err, ErrHiddenLetters) {
		t.Fatalf("Next: %v, want ErrHiddenLetters", err)
	}
	if _, err := r.Next(t.Context()); !errors.Is(err, io.EOF) {
		t.Fatalf("Next after giving up: %v, want io.EOF", err)
	}
}

// scriptedQueue answers each ReceiveMessage with the next of receives (then nothing) and each
// GetQueueAttributes with the next of notVisible (then 0).
type scriptedQueue struct {
	hiddenQueue
	receives   [][]string // message ids, per receive
	notVisible []int
	body       string
}

func (q *scriptedQueue) ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	out := &sqs.ReceiveMessageOutput{}
	if len(q.receives) > 0 {
		for _, id := range q.receives[0] {
			out.Messages = append(out.Messages, sqstypes.Message{MessageId: aws.String(id), ReceiptHandle: aws.String("h-" + id), Body: aws.String(q.body)})
		}
		q.receives = q.receives[1:]
	}
	return out, nil
}

func (q *scriptedQueue) GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	n := 0
	if len(q.notVisible) > 0 {
		n, q.notVisible = q.notVisible[0], q.notVisible[1:]
	}
	return &sqs.GetQueueAttributesOutput{Attributes: map[string]string{
		string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible): strconv.Itoa(n),
	}}, nil
}

// A message already read can come back (its replay outlasted the visibility timeout) while
// another, hidden by a lost receive, has just become visible: a receive that brings back only
// the first is no sign that the queue is drained, and the second must still be read.
func TestSQSReaderKeepsReadingWhenOnlyAReadMessageCameBack(t *testing.T) {
	body, err := encode(NewMessage(smallFailure("shardId-000000000001", 2, 10, time.Now())))
	if err != nil {
		t.Fatal(err)
	}
	q := &scriptedQueue{
		body: string(body),
		// m-1; nothing (m-2's answer was lost); nothing; m-1 back; then m-2.
		receives: [][]string{{"m-1"}, nil, nil, {"m-1"}, {"m-2"}},
		// m-1 held and m-2 hidden; then only m-1 (held) hidden: m-2 is visible again.
		notVisible: []int{2, 1},
	}
	r := NewSQSReader(q, SQSReaderOptions{QueueURL: "https://q/1/dl", HiddenWait: time.Minute})
	first, err := r.Next(t.Context())
	if err != nil || first.id != "m-1" {
		t.Fatalf("first Next: %q, %v; want m-1", first.id, err)
	}
	second, err := r.Next(t.Context())
	if err != nil || second.id != "m-2" {
		t.Fatalf("second Next: %q, %v; want m-2 (it became visible again; the reader ended early)", second.id, err)
	}
}
