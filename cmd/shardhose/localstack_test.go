package main

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shardhose/shardhose/internal/edge"
	"github.com/shardhose/shardhose/internal/testenv"
)

// TestLocalStackConfigThroughOneEdgeEndpoint runs the daemon with configs/localstack.yaml, whose
// only endpoint is LocalStack's edge, against a router that sends each request to kinesis-local,
// dynalite or moto by the service in its SigV4 credential scope, as LocalStack's edge does. The
// good records reach S3, the poison one the dead-letter queue, the shards are checkpointed, and
// every service went through the one port.
func TestLocalStackConfigThroughOneEdgeEndpoint(t *testing.T) {
	s := newE2EStack(t, 2)
	q := newDeadLetterQueue(t, s)
	router, err := edge.New(map[string]string{
		"kinesis": s.env.Kinesis, "dynamodb": s.env.DynamoDB, "s3": s.env.Moto, "sqs": s.env.Moto,
	})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(router)
	defer front.Close()

	recs := makeRecords(0, 300)
	recs = append(recs, testenv.Rec{PartitionKey: "poison", Data: []byte(`{"not json`)})
	puts := testenv.PutRecords(t, s.kin, s.stream, recs)
	want := lastSequencePerShard(puts)

	// The file as shipped, with the names of this test's resources and the edge's address.
	d := startDaemonEnv(t, "../../configs/localstack.yaml", "worker-edge", []string{
		"SHARDHOSE_AWS__ENDPOINT=" + front.URL,
		"SHARDHOSE_STREAM__NAME=" + s.stream,
		"SHARDHOSE_LEASES__TABLE=" + s.table,
		"SHARDHOSE_SINKS__0__S3__BUCKET=" + s.bucket,
		"SHARDHOSE_SINKS__0__S3__BUFFERING_HINTS__INTERVAL_IN_SECONDS=1",
		"SHARDHOSE_DEAD_LETTER__SQS__QUEUE_URL=" + q.url,
		"SHARDHOSE_DEAD_LETTER__OVERFLOW__BUCKET=" + s.bucket,
		"SHARDHOSE_PROCESSING__RETRY__INITIAL_BACKOFF=100ms",
		"SHARDHOSE_PROCESSING__RETRY__MAX_BACKOFF=200ms",
		"SHARDHOSE_LOG__FORMAT=json",
	})
	s.waitCheckpointedAt(t, d, want, 90*time.Second)
	msgs := q.receiveAll(t, 1, 30*time.Second)
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := d.waitExit(40 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	counts, _ := s.delivered(t)
	if n, sample := missing(recs[:300], counts); n > 0 {
		t.Fatalf("%d good records missing in S3, e.g. %v", n, sample)
	}
	if got, err := msgs[0].Records(); err != nil || len(got) != 1 || string(got[0].Data) != `{"not json` {
		t.Fatalf("dead letter holds %v (%v), want the poison record alone", got, err)
	}
	routed := router.Counts()
	for _, service := range []string{"kinesis", "dynamodb", "s3", "sqs"} {
		if routed[service] == 0 {
			t.Errorf("no %s request went through the edge endpoint: %v", service, routed)
		}
	}
	t.Logf("through one endpoint: %s", fmt.Sprint(routed))
	if strings.Contains(d.logs.String(), "no backend for service") {
		t.Errorf("a request was signed for a service the edge does not route")
	}
}
