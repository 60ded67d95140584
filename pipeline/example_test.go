package pipeline_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/dlq"
	"github.com/shardhose/shardhose/pipeline"
	"github.com/shardhose/shardhose/process"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks"
	filesink "github.com/shardhose/shardhose/sinks/file"
)

// Embedding shardhose with a handler of your own: the handler upper-cases every record and drops
// test events; the pipeline puts Lambda's failure policy around it. In a program, the factory is
// passed to consumer.New as Options.NewPipeline.
func Example() {
	shout := process.PerRecord("shout", func(_ context.Context, r record.Record) (process.Output, error) {
		if bytes.Contains(r.Data, []byte(`"test":true`)) {
			return process.Output{Outcome: process.Dropped, Record: r}, nil
		}
		r.Data = bytes.ToUpper(r.Data)
		return process.Output{Outcome: process.Deliver, Record: r}, nil
	})
	var out strings.Builder
	stdout, _ := filesink.New(filesink.Options{Name: "stdout", Config: config.FileDefaults(), Stdout: &out})
	dead, _ := dlq.NewFile(filepath.Join(os.TempDir(), "dead-letters.jsonl"))

	factory, err := pipeline.New(pipeline.Options{
		Policy: pipeline.Policy{
			MaximumRetryAttempts:       2,
			BisectBatchOnFunctionError: true,
			ParallelizationFactor:      1,
			HandlerTimeout:             time.Minute,
		},
		Handler:     shout,
		Sinks:       []sinks.Sink{stdout},
		DeadLetters: dead,
	})
	if err != nil {
		panic(err)
	}

	ctx := context.Background()
	stage := factory(ctx, "shardId-000000000000")
	finished := make(chan struct{})
	_ = stage.Handle(ctx, []record.Record{
		{SequenceNumber: "1", Data: []byte(`{"event":"purchase"}`)},
		{SequenceNumber: "2", Data: []byte(`{"event":"view","test":true}`)},
	}, func() { close(finished) })
	<-finished
	stage.Close()
	fmt.Print(out.String())
	// Output: {"EVENT":"PURCHASE"}
}
