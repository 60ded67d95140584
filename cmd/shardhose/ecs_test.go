package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/shardhose/shardhose/config"
)

func TestWorkerIDOnECSIsTheTaskID(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v4/abc/task" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"Cluster":"prod","TaskARN":"arn:aws:ecs:us-east-1:123456789012:task/prod/8f2e1c0d9a7b4e6f","Family":"shardhose"}`))
	}))
	defer srv.Close()
	t.Setenv(ecsMetadataEnv, srv.URL+"/v4/abc")
	if got := ecsTaskWorkerID(); got != "8f2e1c0d9a7b4e6f" {
		t.Fatalf("worker id %q, want the task id", got)
	}
	cfg, err := config.Load(config.LoadOptions{Path: "testdata/no-dead-letter.yaml", Environ: func() []string { return nil }, WorkerID: ecsTaskWorkerID})
	if err != nil || cfg.Leases.WorkerID != "8f2e1c0d9a7b4e6f" {
		t.Fatalf("loaded worker id %q (%v), want the task id", cfg.Leases.WorkerID, err)
	}
	// A worker id that is configured wins.
	cfg, err = config.Load(config.LoadOptions{Path: "testdata/no-dead-letter.yaml", Environ: func() []string { return []string{"SHARDHOSE_LEASES__WORKER_ID=blue-1"} }, WorkerID: ecsTaskWorkerID})
	if err != nil || cfg.Leases.WorkerID != "blue-1" {
		t.Fatalf("loaded worker id %q (%v), want the configured blue-1", cfg.Leases.WorkerID, err)
	}
	t.Setenv(ecsMetadataEnv, srv.URL+"/elsewhere")
	if got := ecsTaskWorkerID(); got != "" {
		t.Fatalf("worker id %q from an endpoint that answered 404, want none", got)
	}
}
