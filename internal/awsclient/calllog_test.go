package awsclient

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardhose/shardhose/config"
)

// TestCallLogRecordsEachOperationOnce: with CallLogEnv set, every client made from Load appends
// each service and operation it calls to the file, once, whether the call succeeds or not.
func TestCallLogRecordsEachOperationOnce(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if r.Header.Get("X-Amz-Target") == "Kinesis_20131202.ListStreams" {
			w.Write([]byte(`{"StreamNames":[],"HasMoreStreams":false}`))
			return
		}
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"__type":"ValidationException","message":"no"}`))
	}))
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "calls.txt")
	t.Setenv(CallLogEnv, path)
	cfg := config.AWS{Region: "us-east-1", Endpoint: srv.URL, Credentials: config.Credentials{Source: "static", AccessKeyID: "a", SecretAccessKey: "b"}}
	awsCfg, err := Load(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	kin := Kinesis(awsCfg, cfg)
	for range 2 {
		if _, err := kin.ListStreams(t.Context(), &kinesis.ListStreamsInput{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kin.ListShards(t.Context(), &kinesis.ListShardsInput{StreamName: new(string)}); err == nil {
		t.Fatal("ListShards succeeded against a server that refuses it")
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Kinesis ListStreams\nKinesis ListShards\n"; string(got) != want {
		t.Fatalf("call log %q, want %q", got, want)
	}
}
