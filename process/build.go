package process

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/clock"
)

// Deps are what Build needs besides the configuration.
type Deps struct {
	// Lambda invokes functions for lambda handlers; required only when one is configured.
	Lambda LambdaInvoker
	// HTTPClient sends the requests of http handlers; nil means http.DefaultClient. Each request
	// is bounded by the handler's timeout and the ctx of the call, so the client needs no timeout
	// of its own.
	HTTPClient *http.Client
	// Clock tells the time of processing (enrich's timestamp_field); nil means the system clock.
	Clock clock.Clock
	// Logger receives the handlers' warnings; nil means slog.Default().
	Logger *slog.Logger
	// Source fills the stream fields of the events sent to functions (eventSourceARN, awsRegion,
	// invokeIdentityArn; Firehose's sourceKinesisStreamArn and deliveryStreamArn).
	Source Source
	// ReportBatchItemFailures is the failure policy's setting of the same name (Lambda's
	// FunctionResponseTypes ["ReportBatchItemFailures"]): with it on, lambda and http handlers
	// under the Lambda contract read the function's batchItemFailures. Set it from the same key
	// the engine honours, or partial batch responses are ignored (or honoured) against the user's
	// wish.
	ReportBatchItemFailures bool
}

// Build returns the handler the processing section configures: Chain of its handlers in order, or
// PassThrough when there are none. It checks what it needs (a Lambda client for lambda handlers,
// compilable patterns, ...) and names the failing entry as processing.handlers[i]; the full rules
// are config.Validate's.
func Build(cfg config.Processing, deps Deps) (Handler, error) {
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Clock == nil {
		deps.Clock = clock.Real()
	}
	hs := make([]Handler, 0, len(cfg.Handlers))
	var errs []error
	for i, hc := range cfg.Handlers {
		h, err := buildOne(hc, deps)
		if err != nil {
			errs = append(errs, fmt.Errorf("processing.handlers[%d] (%s): %w", i, hc.Type, err))
			continue
		}
		hs = append(hs, h)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return Chain(hs...), nil
}

func buildOne(hc config.ProcessingHandler, deps Deps) (Handler, error) {
	contract := LambdaContract
	switch hc.ContractOrDefault() {
	case config.ContractLambda:
	case config.ContractFirehose:
		contract = FirehoseContract
	default:
		return nil, fmt.Errorf("unknown contract %q: use lambda or firehose", hc.Contract)
	}
	switch hc.Type {
	case config.HandlerJSON:
		return NewJSON(), nil
	case config.HandlerFilter:
		return NewFilter(hc.Patterns)
	case config.HandlerEnrich:
		cats := make([]Category, len(hc.Categories))
		for i, c := range hc.Categories {
			cats[i] = Category{Field: c.Field, Into: c.Into, Ranges: make([]Range, len(c.Ranges))}
			for j, r := range c.Ranges {
				cats[i].Ranges[j] = Range{Below: r.Below, UpTo: r.UpTo, Value: r.Value}
			}
		}
		return NewEnrich(EnrichOptions{Fields: hc.Fields, TimestampField: hc.TimestampField, Categories: cats, Clock: deps.Clock})
	case config.HandlerLambda:
		if deps.Lambda == nil {
			return nil, errors.New("a lambda handler needs a Lambda client (Deps.Lambda)")
		}
		return NewLambda(LambdaOptions{
			Client: deps.Lambda, Function: hc.Function, Qualifier: hc.Qualifier, Contract: contract,
			Source: deps.Source, ReportBatchItemFailures: deps.ReportBatchItemFailures, Logger: deps.Logger,
		})
	case config.HandlerHTTP:
		return NewHTTP(HTTPOptions{
			URL: hc.URL, Timeout: hc.TimeoutOrDefault(), Client: deps.HTTPClient, Contract: contract,
			Source: deps.Source, ReportBatchItemFailures: deps.ReportBatchItemFailures, Logger: deps.Logger,
		})
	}
	return nil, fmt.Errorf("unknown handler type %q: use json, filter, enrich, lambda or http", hc.Type)
}
