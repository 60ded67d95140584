package awsclient

import (
	"context"
	"fmt"
	"os"
	"sync"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"
)

// CallLogEnv names a file to which every client made from Load appends "<ServiceID> <Operation>"
// the first time the process calls that operation (whether or not the call succeeds). It is a
// debugging aid: it answers "which permissions does this configuration really use?", and the
// test of `shardhose iam-policy` relies on it to check the printed policy against a real run.
// It is not a configuration key and is off unless set.
const CallLogEnv = "SHARDHOSE_DEBUG_AWS_CALL_LOG"

// callLog appends each distinct service and operation once to a file.
type callLog struct {
	path string
	mu   sync.Mutex
	seen map[string]bool
}

func (l *callLog) record(service, operation string) error {
	key := service + " " + operation
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen[key] {
		return nil
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, werr := fmt.Fprintln(f, key)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		l.seen[key] = true
	}
	return werr
}

// addCallLog registers, on every client made from cfg, a middleware that records each operation
// called, when CallLogEnv is set.
func addCallLog(cfg *awsconfigAPIOptions) {
	path := os.Getenv(CallLogEnv)
	if path == "" {
		return
	}
	l := &callLog{path: path, seen: map[string]bool{}}
	*cfg = append(*cfg, func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("shardhoseCallLog",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if err := l.record(awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx)); err != nil {
					return middleware.InitializeOutput{}, middleware.Metadata{}, fmt.Errorf("%s: %w", CallLogEnv, err)
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
	})
}

// awsconfigAPIOptions is the type of aws.Config.APIOptions.
type awsconfigAPIOptions = []func(*middleware.Stack) error
