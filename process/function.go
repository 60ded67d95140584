package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/shardhose/shardhose/record"
)

// LambdaInvoker is the part of the AWS SDK's Lambda client the lambda handler uses; *lambda.Client
// implements it.
type LambdaInvoker interface {
	Invoke(ctx context.Context, params *lambda.InvokeInput, optFns ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

var _ LambdaInvoker = (*lambda.Client)(nil)

// LambdaOptions configure NewLambda.
type LambdaOptions struct {
	// Client invokes the function. Required. Its HTTP client must allow a response to take as
	// long as the function may run (up to 15 minutes): the handler's ctx is the bound to use.
	Client LambdaInvoker
	// Function is the function's name, ARN or partial ARN, optionally with :alias. Required.
	Function string
	// Qualifier is a version or alias; empty means none.
	Qualifier string
	Contract  Contract
	Source    Source
	// ReportBatchItemFailures makes the Lambda contract read the function's batchItemFailures;
	// it must be the event source mapping's FunctionResponseTypes setting, the one the engine
	// honours. When off the function's answer is ignored, as Lambda does.
	ReportBatchItemFailures bool
	// Logger receives a warning when the function returns batchItemFailures that are ignored;
	// nil means slog.Default().
	Logger *slog.Logger
}

// NewLambda returns the lambda handler: it invokes an AWS Lambda function synchronously
// (RequestResponse) with each batch, under the Lambda or Firehose contract (see Contract).
//
// A function error (X-Amz-Function-Error) fails the whole batch with a *FunctionError. A failure
// to invoke (throttling, a missing function, the network) fails it with an *InvocationError. A
// batch whose request exceeds MaxInvokePayload fails without an invocation, wrapping
// ErrPayloadTooLarge. Under the Lambda contract with ReportBatchItemFailures on, a partial batch
// response becomes a *PartialFailure (see LambdaContract); records are delivered unchanged. Under
// the Firehose contract each record's result becomes its Output.
//
// The handler makes one call per batch and never retries; the engine does. It is safe for
// concurrent use.
func NewLambda(opts LambdaOptions) (Handler, error) {
	if opts.Client == nil {
		return nil, errors.New("lambda handler: no Lambda client")
	}
	if opts.Function == "" {
		return nil, errors.New("lambda handler: no function name")
	}
	name := "lambda:" + opts.Function
	if opts.Qualifier != "" {
		name += ":" + opts.Qualifier
	}
	l := &lambdaSender{client: opts.Client, function: opts.Function, name: name}
	if opts.Qualifier != "" {
		l.qualifier = aws.String(opts.Qualifier)
	}
	return &functionHandler{
		name: name,
		call: newContractCall(name, opts.Contract, opts.Source, opts.ReportBatchItemFailures, opts.Logger),
		send: l.send,
	}, nil
}

type lambdaSender struct {
	client    LambdaInvoker
	function  string
	qualifier *string
	name      string
}

func (l *lambdaSender) send(ctx context.Context, body []byte) ([]byte, error) {
	if len(body) > MaxInvokePayload {
		return nil, fmt.Errorf("invoke %s: %w: %d bytes, the limit is %d", l.name, ErrPayloadTooLarge, len(body), MaxInvokePayload)
	}
	out, err := l.client.Invoke(ctx, &lambda.InvokeInput{
		FunctionName:   aws.String(l.function),
		Qualifier:      l.qualifier,
		InvocationType: types.InvocationTypeRequestResponse,
		Payload:        body,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("invoke %s: %w (%v)", l.name, ctx.Err(), err)
		}
		var tooLarge *types.RequestTooLargeException
		if errors.As(err, &tooLarge) {
			return nil, fmt.Errorf("invoke %s: %w: %w", l.name, ErrPayloadTooLarge, err)
		}
		return nil, &InvocationError{Function: l.name, Err: err}
	}
	if out.FunctionError != nil {
		return nil, newFunctionError(l.name, *out.FunctionError, out.Payload, int(out.StatusCode), aws.ToString(out.ExecutedVersion))
	}
	return out.Payload, nil
}

// HTTPOptions configure NewHTTP.
type HTTPOptions struct {
	// URL receives each batch as a POST of JSON. Required.
	URL string
	// Timeout bounds one request (on top of the handler's ctx); 0 means no bound of its own.
	Timeout time.Duration
	// Client sends the requests; nil means http.DefaultClient.
	Client   *http.Client
	Contract Contract
	Source   Source
	// ReportBatchItemFailures is as in LambdaOptions.
	ReportBatchItemFailures bool
	// Logger is as in LambdaOptions.
	Logger *slog.Logger
}

// MaxHTTPResponse caps the answer an http handler reads; a longer one fails the batch.
const MaxHTTPResponse = 64 << 20

// NewHTTP returns the http handler: it POSTs each batch as JSON (Content-Type application/json)
// to a URL, such as a local function server used in development instead of Lambda, under the
// Lambda or Firehose contract (see Contract), and reads the answer as the lambda handler does.
//
// Any status other than 2xx fails the whole batch, naming the status and the start of the body.
// A 2xx answer with an X-Amz-Function-Error header (as Lambda's own Invoke API sends) fails it with
// a *FunctionError. A request that gets no answer (refused, timed out) fails it with an
// *InvocationError. The handler never retries; the engine does. It is safe for concurrent use.
func NewHTTP(opts HTTPOptions) (Handler, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("http handler: %q is not an http:// or https:// URL with a host", opts.URL)
	}
	client := opts.Client
	if client == nil {
		client = http.DefaultClient
	}
	name := "http:" + u.Host + u.Path
	h := &httpSender{url: opts.URL, timeout: opts.Timeout, client: client, name: name}
	return &functionHandler{
		name: name,
		call: newContractCall(name, opts.Contract, opts.Source, opts.ReportBatchItemFailures, opts.Logger),
		send: h.send,
	}, nil
}

type httpSender struct {
	url     string
	timeout time.Duration
	client  *http.Client
	name    string
}

func (h *httpSender) send(ctx context.Context, body []byte) ([]byte, error) {
	reqCtx := ctx
	if h.timeout > 0 {
		var cancel context.CancelFunc
		reqCtx, cancel = context.WithTimeout(ctx, h.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("invoke %s: build the request: %w", h.name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("invoke %s: %w (%v)", h.name, ctx.Err(), err)
		}
		if reqCtx.Err() != nil {
			err = fmt.Errorf("no answer within the timeout of %s: %w", h.timeout, err)
		}
		return nil, &InvocationError{Function: h.name, Err: err}
	}
	defer resp.Body.Close()
	payload, err := io.ReadAll(io.LimitReader(resp.Body, MaxHTTPResponse+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("invoke %s: read the answer: %w (%v)", h.name, ctx.Err(), err)
		}
		return nil, &InvocationError{Function: h.name, Err: fmt.Errorf("read the answer: %w", err)}
	}
	if len(payload) > MaxHTTPResponse {
		return nil, fmt.Errorf("invoke %s: the answer is longer than %d bytes", h.name, MaxHTTPResponse)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("invoke %s: HTTP %s: %s", h.name, resp.Status, excerpt(payload))
	}
	if kind := resp.Header.Get("X-Amz-Function-Error"); kind != "" {
		return nil, newFunctionError(h.name, kind, payload, resp.StatusCode, resp.Header.Get("X-Amz-Executed-Version"))
	}
	return payload, nil
}

// functionHandler is a lambda or http handler: a contract and a way to send.
type functionHandler struct {
	name string
	call contractCall
	send func(ctx context.Context, body []byte) ([]byte, error)
}

func (f *functionHandler) Name() string { return f.name }

// MayFailRecords is true under Firehose's transform contract, whose results include
// ProcessingFailed.
func (f *functionHandler) MayFailRecords() bool { return f.call.contract == FirehoseContract }

func (f *functionHandler) Handle(ctx context.Context, batch []record.Record) ([]Output, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", f.name, err)
	}
	if len(batch) == 0 {
		return nil, nil
	}
	body, ids, err := f.call.request(batch)
	if err != nil {
		return nil, err
	}
	payload, err := f.send(ctx, body)
	if err != nil {
		return nil, err
	}
	return f.call.response(payload, batch, ids)
}

func newContractCall(function string, c Contract, src Source, report bool, log *slog.Logger) contractCall {
	if log == nil {
		log = slog.Default()
	}
	return contractCall{
		function:                function,
		contract:                c,
		source:                  src,
		reportBatchItemFailures: report,
		log:                     log,
		warnIgnored:             &sync.Once{},
	}
}
