package opensearch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	opensearchgo "github.com/opensearch-project/opensearch-go/v4"
	"github.com/opensearch-project/opensearch-go/v4/opensearchapi"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/testenv"
	"github.com/shardhose/shardhose/record"
	"github.com/shardhose/shardhose/sinks/opensearch/bulktest"
	"github.com/shardhose/shardhose/sinks/sinktest"
)

// Environment of TestRealCluster.
const (
	// envOpenSearchURL names a real cluster, e.g. http://localhost:4566/opensearch/us-east-1/my-domain
	// (LocalStack) or https://admin:<password>@localhost:9200 (credentials become basic auth).
	envOpenSearchURL = "SHARDHOSE_TEST_OPENSEARCH_URL"
	// envOpenSearchInsecure=1 accepts the cluster's self-signed certificate.
	envOpenSearchInsecure = "SHARDHOSE_TEST_OPENSEARCH_INSECURE"
	// envOpenSearchCAFile names the PEM file of the cluster's CA.
	envOpenSearchCAFile = "SHARDHOSE_TEST_OPENSEARCH_CA_FILE"
)

// clusterTarget is where clusterScenario runs.
type clusterTarget struct {
	url  string
	auth config.OpenSearchAuth
	tls  config.OpenSearchTLS
	// reject makes the cluster refuse the document with this id as malformed; nil when the
	// cluster refuses it by itself (its mapping makes n a number).
	reject func(id string)
}

// TestRealCluster runs clusterScenario against the cluster SHARDHOSE_TEST_OPENSEARCH_URL names.
func TestRealCluster(t *testing.T) {
	raw := os.Getenv(envOpenSearchURL)
	if raw == "" {
		t.Skip(envOpenSearchURL + " is not set: no real OpenSearch cluster to test against")
	}
	testenv.NeedsServers(t, "the OpenSearch cluster "+envOpenSearchURL+" names")
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%s: %v", envOpenSearchURL, err)
	}
	target := clusterTarget{auth: config.OpenSearchAuth{Type: "none", Service: "es"}}
	if u.User != nil {
		pw, _ := u.User.Password()
		target.auth = config.OpenSearchAuth{Type: "basic", Username: u.User.Username(), Password: pw, Service: "es"}
		u.User = nil
	}
	target.url = u.String()
	target.tls.InsecureSkipVerify = os.Getenv(envOpenSearchInsecure) == "1"
	target.tls.CAFile = os.Getenv(envOpenSearchCAFile)
	clusterScenario(t, target)
}

// The scenario itself is kept honest by running it against bulktest too.
func TestClusterScenarioOnBulktest(t *testing.T) {
	srv := bulktest.Start(t)
	srv.RequireBasicAuth("admin", "Adm1n-pass")
	clusterScenario(t, clusterTarget{
		url:  srv.URL,
		auth: config.OpenSearchAuth{Type: "basic", Username: "admin", Password: "Adm1n-pass", Service: "es"},
		reject: func(id string) {
			srv.FailID(id, bulktest.Failure{Status: 400, Type: "mapper_parsing_exception", Reason: "failed to parse field [n] of type [long]"})
		},
	})
}

// clusterScenario indexes records with the real clock into a fresh index (deleted afterwards):
// every document readable by its record-position id, a redelivery adding nothing, and a document
// the mapping refuses backed up with status 400.
func clusterScenario(t *testing.T, target clusterTarget) {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	base := "shardhose-it-" + hex.EncodeToString(rnd[:])
	index := indexName(base, oneDay, sinktest.Start)

	cfg := config.OpenSearchDefaults()
	cfg.Endpoints = []string{target.url}
	cfg.Index = base
	cfg.S3Backup.Bucket = "unused"
	cfg.Auth = target.auth
	cfg.TLS = target.tls
	cfg.RetryDurationInSeconds = 30
	fb := newFakeBackup()
	s, err := New(Options{Name: "it", Config: cfg, Backup: fb, Clock: clock.Real(), Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if res, err := opensearchgo.Do(ctx, s.client, http.MethodDelete, opensearchapi.IndicesDeleteReq{Indices: []string{index}}, (*opensearchgo.NoBody)(nil)); err != nil || res.IsError() {
			t.Logf("cleanup: delete index %s: %v %v", index, err, res)
		}
		_ = s.Close(ctx)
	})
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}

	deliver := func(recs []record.Record) {
		t.Helper()
		acks := sinktest.NewAckRecorder(t)
		if err := s.Write(ctx, recs, acks.Done(1)); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil || !acks.Acked(1) {
			t.Fatalf("Flush: %v (acknowledged %v)", err, acks.Acked(1))
		}
	}
	first := sinktest.Records(50, "shardId-000000000000")
	deliver(first)
	second := sinktest.Records(53, "shardId-000000000000")[50:]
	second[1].Data = fmt.Appendf(nil, `{"shard":"shardId-000000000000","seq":%q,"n":"not a number"}`, second[1].SequenceNumber)
	if target.reject != nil {
		target.reject(positionID(&second[1]))
	}
	deliver(second)
	deliver(first) // a redelivery: the same documents again

	if res, err := opensearchgo.Do(ctx, s.client, http.MethodPost, opensearchapi.IndicesRefreshReq{Index: []string{index}}, (*opensearchgo.NoBody)(nil)); err != nil || res.IsError() {
		t.Fatalf("refresh %s: %v %v", index, err, res)
	}
	var count struct {
		Count int `json:"count"`
	}
	if _, err := opensearchgo.Do(ctx, s.client, http.MethodGet, opensearchapi.IndicesCountReq{Indices: []string{index}}, &count); err != nil || count.Count != 52 {
		t.Errorf("index %s holds %d documents (%v), want 52", index, count.Count, err)
	}
	for _, r := range append(first, second[0], second[2]) {
		var got struct {
			Found  bool            `json:"found"`
			Source json.RawMessage `json:"_source"`
		}
		id := positionID(&r)
		if _, err := opensearchgo.Do(ctx, s.client, http.MethodGet, opensearchapi.DocumentGetReq{Index: index, DocumentID: id}, &got); err != nil || !got.Found {
			t.Errorf("document %s of record %s: found %v, %v", id, r.SequenceNumber, got.Found, err)
			continue
		}
		var want, have any
		_ = json.Unmarshal(r.Data, &want)
		_ = json.Unmarshal(got.Source, &have)
		if fmt.Sprint(want) != fmt.Sprint(have) {
			t.Errorf("document %s = %s, want %s", id, got.Source, r.Data)
		}
	}
	errs := fb.errorRecords(t)
	if len(errs) != 1 || errs[0].ErrorCode != "400" || errs[0].Extra["esDocumentId"] != positionID(&second[1]) || errs[0].Extra["esIndexName"] != index {
		t.Errorf("error records %+v, want the refused document with status 400", errs)
	}
}
