package awsclient

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"

	"github.com/shardhose/shardhose/config"
)

// Kinds of AWS call, each with its own attempt timeout (aws.timeouts.<kind>).
const (
	kindRead   = "read"
	kindWrite  = "write"
	kindUpload = "upload"
)

// callKind says which aws.timeouts key bounds one attempt of operation, or "" when none does:
// Lambda's Invoke runs as long as the function (processing.handler_timeout bounds it), and
// GetObject and SubscribeToShard return a body that the caller reads after the call returns.
func callKind(operation string) string {
	switch operation {
	case "Invoke", "InvokeWithResponseStream", "InvokeAsync", "GetObject", "SubscribeToShard":
		return ""
	case "PutObject", "UploadPart", "PutRecordBatch", "PutRecords":
		return kindUpload
	case "ReceiveMessage":
		return kindRead
	}
	for _, p := range []string{"Get", "List", "Describe", "Head", "Scan", "Query", "BatchGet"} {
		if strings.HasPrefix(operation, p) {
			return kindRead
		}
	}
	return kindWrite
}

// TimeoutError is an attempt of an AWS call that got no complete response within its
// aws.timeouts key. The SDK does not retry it (a server that did not answer within seconds is
// down, not busy); the caller's own policy does. It does not wrap context.DeadlineExceeded, so a
// caller never takes it for the end of its own context.
type TimeoutError struct {
	Operation string        // e.g. "PutObject"
	After     time.Duration // the timeout that ran out
	Key       string        // e.g. "aws.timeouts.upload"
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("no response within %s (%s)", e.After, e.Key)
}

// RetryableError tells the SDK's retryer not to retry the attempt itself.
func (e *TimeoutError) RetryableError() bool { return false }

// Timeout reports true: the error is a timeout.
func (e *TimeoutError) Timeout() bool { return true }

// CallError is the error of an AWS call, with how many attempts the SDK made (its own retries
// included). Every client made from Load returns its errors wrapped in one; its message is the
// wrapped error's. outage.Attempts reads the count through errors.As.
type CallError struct {
	attempts int
	err      error
}

func (e *CallError) Error() string { return e.err.Error() }
func (e *CallError) Unwrap() error { return e.err }

// Attempts is how many HTTP attempts the call made, at least 1.
func (e *CallError) Attempts() int { return e.attempts }

type attemptTimeoutKey struct{}

// callBounds is an initialize middleware: it decides the attempt timeout of the call (its kind's
// key, plus the long-poll wait of an SQS ReceiveMessage) for attemptTimeout below, and wraps the
// call's error in a CallError that counts the attempts made.
type callBounds struct{ timeouts config.Timeouts }

func (callBounds) ID() string { return "shardhose.CallBounds" }

func (m callBounds) HandleInitialize(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	var bound *TimeoutError
	switch op := awsmiddleware.GetOperationName(ctx); callKind(op) {
	case kindRead:
		bound = &TimeoutError{Operation: op, After: m.timeouts.Read, Key: "aws.timeouts.read"}
		if r, ok := in.Parameters.(*sqs.ReceiveMessageInput); ok {
			bound.After += time.Duration(r.WaitTimeSeconds) * time.Second
		}
	case kindWrite:
		bound = &TimeoutError{Operation: op, After: m.timeouts.Write, Key: "aws.timeouts.write"}
	case kindUpload:
		bound = &TimeoutError{Operation: op, After: m.timeouts.Upload, Key: "aws.timeouts.upload"}
	}
	if bound != nil && bound.After > 0 {
		ctx = middleware.WithStackValue(ctx, attemptTimeoutKey{}, bound)
	}
	out, md, err := next.HandleInitialize(ctx, in)
	if err != nil {
		n := 1
		if r, ok := retry.GetAttemptResults(md); ok && len(r.Results) > 0 {
			n = len(r.Results)
		}
		err = &CallError{attempts: n, err: err}
	}
	return out, md, err
}

// attemptTimeout is a finalize middleware placed after the SDK's retry middleware, so it runs
// once per attempt: it gives the attempt the timeout callBounds chose, and turns an attempt that
// ran out of it into a TimeoutError.
type attemptTimeout struct{}

func (attemptTimeout) ID() string { return "shardhose.AttemptTimeout" }

func (attemptTimeout) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
	bound, _ := middleware.GetStackValue(ctx, attemptTimeoutKey{}).(*TimeoutError)
	if bound == nil {
		return next.HandleFinalize(ctx, in)
	}
	actx, cancel := context.WithTimeout(ctx, bound.After)
	defer cancel()
	out, md, err := next.HandleFinalize(actx, in)
	if err != nil && ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		err = bound
	}
	return out, md, err
}

// addCallBounds registers both middlewares on a client's stack.
func addCallBounds(timeouts config.Timeouts) func(*middleware.Stack) error {
	return func(s *middleware.Stack) error {
		if err := s.Initialize.Add(callBounds{timeouts: timeouts}, middleware.Before); err != nil {
			return err
		}
		if _, ok := s.Finalize.Get("Retry"); ok {
			return s.Finalize.Insert(attemptTimeout{}, "Retry", middleware.After)
		}
		return s.Finalize.Add(attemptTimeout{}, middleware.After)
	}
}
