package kcl_test

import (
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/config"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"

	"github.com/shardhose/shardhose/kcl"
)

// printer is an application's record processor, written for vmware-go-kcl-v2 and unchanged.
type printer struct{ shard string }

func (p *printer) Initialize(in *interfaces.InitializationInput) { p.shard = in.ShardId }

func (p *printer) ProcessRecords(in *interfaces.ProcessRecordsInput) {
	for _, r := range in.Records {
		fmt.Printf("%s %s %s\n", p.shard, aws.ToString(r.SequenceNumber), r.Data)
	}
	if n := len(in.Records); n > 0 {
		// Fenced: after a lost lease this returns an error and writes nothing.
		if err := in.Checkpointer.Checkpoint(in.Records[n-1].SequenceNumber); err != nil {
			log.Printf("checkpoint refused, stopping this shard's work: %v", err)
		}
	}
}

func (p *printer) Shutdown(in *interfaces.ShutdownInput) {
	if in.ShutdownReason == interfaces.TERMINATE {
		_ = in.Checkpointer.Checkpoint(nil)
	}
}

type factory struct{}

func (factory) CreateProcessor() interfaces.IRecordProcessor { return &printer{} }

// A vmware-go-kcl-v2 application moved to shardhose: the configuration and the processor are the
// library's; only the worker's import changed (worker.NewWorker became kcl.NewWorker). It
// continues from the checkpoints in the application's existing lease table.
func Example() {
	cfg := config.NewKinesisClientLibConfig("orders-app", "orders", "us-east-1", "worker-1").
		WithInitialPositionInStream(config.TRIM_HORIZON).
		WithMaxRecords(500)

	w := kcl.NewWorker(factory{}, cfg)
	if err := w.Start(); err != nil {
		log.Fatal(err) // includes every configuration field shardhose cannot honour
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	w.Shutdown() // processors see REQUESTED and may checkpoint; leases are released
}
