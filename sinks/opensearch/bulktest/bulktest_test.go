package bulktest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// bulkAnswer is the documented shape of a _bulk response.
type bulkAnswer struct {
	Took   *int  `json:"took"`
	Errors *bool `json:"errors"`
	Items  []map[string]struct {
		Index  string `json:"_index"`
		ID     string `json:"_id"`
		Status int    `json:"status"`
		Result string `json:"result"`
		Error  *struct {
			Type   string `json:"type"`
			Reason string `json:"reason"`
		} `json:"error"`
	} `json:"items"`
}

func post(t *testing.T, url, body string, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}

func decodeBulk(t *testing.T, b []byte) bulkAnswer {
	t.Helper()
	var a bulkAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("response %s: %v", b, err)
	}
	if a.Took == nil || a.Errors == nil {
		t.Fatalf("response %s lacks took or errors", b)
	}
	return a
}

func TestBulkActionsAndResponseFormat(t *testing.T) {
	s := Start(t)
	body := `{"index":{"_index":"logs","_id":"1"}}
{"msg":"one"}
{"create":{"_index":"logs","_id":"2"}}
{"msg":"two"}
{"create":{"_index":"logs","_id":"1"}}
{"msg":"again"}
{"index":{"_index":"logs"}}
{"msg":"auto id"}
{"index":{"_index":"logs","_id":"3"}}
not json
{"delete":{"_index":"logs","_id":"2"}}
{"index":{"_index":"logs","_id":"1"}}
{"msg":"replaced"}
`
	status, b := post(t, s.URL+"/_bulk", body)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, b)
	}
	a := decodeBulk(t, b)
	if !*a.Errors {
		t.Error("errors is false with failed items")
	}
	want := []struct {
		action string
		id     string
		status int
		result string
		errTyp string
	}{
		{"index", "1", 201, "created", ""},
		{"create", "2", 201, "created", ""},
		{"create", "1", 409, "", "version_conflict_engine_exception"},
		{"index", "", 201, "created", ""},
		{"index", "3", 400, "", "mapper_parsing_exception"},
		{"delete", "2", 200, "deleted", ""},
		{"index", "1", 200, "updated", ""},
	}
	if len(a.Items) != len(want) {
		t.Fatalf("%d items, want %d: %s", len(a.Items), len(want), b)
	}
	for i, w := range want {
		it, ok := a.Items[i][w.action]
		if !ok || len(a.Items[i]) != 1 {
			t.Errorf("item %d = %v, want one %q entry", i, a.Items[i], w.action)
			continue
		}
		if it.Index != "logs" || (w.id != "" && it.ID != w.id) || it.ID == "" || it.Status != w.status || it.Result != w.result {
			t.Errorf("item %d = %+v, want %+v", i, it, w)
		}
		switch {
		case w.errTyp == "" && it.Error != nil:
			t.Errorf("item %d has error %+v", i, it.Error)
		case w.errTyp != "" && (it.Error == nil || it.Error.Type != w.errTyp || it.Error.Reason == ""):
			t.Errorf("item %d error %+v, want type %s with a reason", i, it.Error, w.errTyp)
		}
	}
	docs := s.Documents("logs")
	if len(docs) != 2 || string(docs["1"]) != `{"msg":"replaced"}` {
		t.Errorf("documents %v", docs)
	}
	reqs := s.BulkRequests()
	if len(reqs) != 1 || len(reqs[0].Items) != 7 || reqs[0].Items[3].ID != "" || string(reqs[0].Items[0].Source) != `{"msg":"one"}` {
		t.Errorf("recorded %+v", reqs)
	}
}

func TestBulkRequestErrors(t *testing.T) {
	s := Start(t)
	for name, c := range map[string]struct {
		path, body string
	}{
		"no trailing newline": {"/_bulk", "{\"index\":{\"_index\":\"a\"}}\n{\"x\":1}"},
		"empty":               {"/_bulk", ""},
		"bad action":          {"/_bulk", "{\"upsert\":{\"_index\":\"a\"}}\n{}\n"},
		"action not json":     {"/_bulk", "index a\n{}\n"},
		"source missing":      {"/_bulk", "{\"index\":{\"_index\":\"a\"}}\n"},
		"_type on OpenSearch": {"/_bulk", "{\"index\":{\"_index\":\"a\",\"_type\":\"t\"}}\n{}\n"},
	} {
		status, b := post(t, s.URL+c.path, c.body)
		var e struct {
			Error struct {
				Type, Reason string
			}
			Status int
		}
		if err := json.Unmarshal(b, &e); err != nil || status != 400 || e.Status != 400 || e.Error.Type == "" || e.Error.Reason == "" {
			t.Errorf("%s: status %d body %s: want 400 with an OpenSearch error", name, status, b)
		}
	}
	if n := s.Count(); n != 0 {
		t.Errorf("%d documents stored from refused requests", n)
	}
}

func TestBulkIndexFromPath(t *testing.T) {
	s := Start(t)
	status, b := post(t, s.URL+"/metrics/_bulk", "{\"index\":{}}\n{\"v\":1}\n{\"index\":{\"_index\":\"other\",\"_id\":\"x\"}}\n{\"v\":2}\n")
	if status != 200 || *decodeBulk(t, b).Errors {
		t.Fatalf("status %d: %s", status, b)
	}
	if got := s.Indices(); got["metrics"] != 1 || got["other"] != 1 {
		t.Errorf("indices %v", got)
	}
}

func TestGzipBody(t *testing.T) {
	s := Start(t)
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, _ = zw.Write([]byte("{\"index\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"v\":1}\n"))
	_ = zw.Close()
	status, b := post(t, s.URL+"/_bulk", z.String(), "Content-Encoding", "gzip")
	if status != 200 || *decodeBulk(t, b).Errors {
		t.Fatalf("status %d: %s", status, b)
	}
	if _, ok := s.Document("a", "1"); !ok {
		t.Error("document not stored")
	}
}

func TestDocumentFailuresAreUsedUp(t *testing.T) {
	s := Start(t)
	s.FailID("1", Failure{Status: 429, Type: "es_rejected_execution_exception", Reason: "rejected", Times: 2})
	s.FailDocuments(func(it Item) bool { return strings.Contains(string(it.Source), "poison") }, Failure{Status: 400, Type: "mapper_parsing_exception", Reason: "failed to parse"})
	body := "{\"index\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"v\":1}\n{\"index\":{\"_index\":\"a\",\"_id\":\"2\"}}\n{\"poison\":true}\n"
	var statuses [][2]int
	for range 3 {
		_, b := post(t, s.URL+"/_bulk", body)
		a := decodeBulk(t, b)
		statuses = append(statuses, [2]int{a.Items[0]["index"].Status, a.Items[1]["index"].Status})
	}
	want := [][2]int{{429, 400}, {429, 400}, {201, 400}}
	for i := range want {
		if statuses[i] != want[i] {
			t.Errorf("round %d statuses %v, want %v", i+1, statuses[i], want[i])
		}
	}
}

func TestRequestFailures(t *testing.T) {
	s := Start(t)
	s.FailRequests(RequestFailure{Status: 503, Type: "cluster_block_exception", Reason: "blocked", Times: 1, Paths: []string{"/_bulk"}})
	s.FailRequests(RequestFailure{Drop: true, Times: 1, Paths: []string{"/_bulk"}})
	body := "{\"index\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"v\":1}\n"

	// GET / is not a bulk path: unaffected.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/", nil)
	if status, b := do(t, req); status != 200 || !strings.Contains(string(b), `"distribution":"opensearch"`) {
		t.Errorf("GET / = %d %s", status, b)
	}
	if status, _ := post(t, s.URL+"/_bulk", body); status != 503 {
		t.Errorf("first bulk: %d, want 503", status)
	}
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+"/_bulk", strings.NewReader(body))
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
		t.Errorf("second bulk answered %d, want a dropped connection", res.StatusCode)
	}
	if status, _ := post(t, s.URL+"/_bulk", body); status != 200 {
		t.Errorf("third bulk: %d, want 200", status)
	}
	reqs := s.BulkRequests()
	if len(reqs) != 3 || reqs[0].Status != 503 || reqs[1].Status != 0 || reqs[2].Status != 200 || len(reqs[1].Items) != 1 {
		t.Errorf("recorded %+v", reqs)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if err := s.WaitBulkRequests(ctx, 3); err != nil {
		t.Error(err)
	}
	s.FailRequests(RequestFailure{Status: 500, Type: "exception", Reason: "x"})
	s.ClearFailures()
	if status, _ := post(t, s.URL+"/_bulk", body); status != 200 {
		t.Errorf("after ClearFailures: %d", status)
	}
}

func TestGetDocument(t *testing.T) {
	s := Start(t)
	post(t, s.URL+"/_bulk", "{\"index\":{\"_index\":\"a\",\"_id\":\"k\"}}\n{\"v\":1}\n")
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/a/_doc/k", nil)
	status, b := do(t, req)
	var got struct {
		Found  bool            `json:"found"`
		Source json.RawMessage `json:"_source"`
	}
	if err := json.Unmarshal(b, &got); err != nil || status != 200 || !got.Found || string(got.Source) != `{"v":1}` {
		t.Errorf("GET doc = %d %s", status, b)
	}
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/a/_doc/missing", nil)
	if status, _ := do(t, req); status != 404 {
		t.Errorf("missing doc: %d", status)
	}
}

func TestBasicAuth(t *testing.T) {
	s := Start(t)
	s.RequireBasicAuth("u", "p")
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/", nil)
	if status, _ := do(t, req); status != 401 {
		t.Errorf("no credentials: %d", status)
	}
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/", nil)
	req.SetBasicAuth("u", "p")
	if status, _ := do(t, req); status != 200 {
		t.Errorf("right credentials: %d", status)
	}
}

func TestSigV4Verification(t *testing.T) {
	creds := aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "SECRET", SessionToken: "TOKEN"}
	s := Start(t)
	s.RequireSigV4(creds, "us-east-1", "es")
	body := "{\"index\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"v\":1}\n"
	signed := func(c aws.Credentials, region, service, sentBody string) *http.Request {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+"/_bulk", strings.NewReader(sentBody))
		req.Header.Set("Content-Type", "application/x-ndjson")
		sum := sha256.Sum256([]byte(body))
		hash := hex.EncodeToString(sum[:])
		req.Header.Set("X-Amz-Content-Sha256", hash)
		if err := v4.NewSigner().SignHTTP(t.Context(), c, req, hash, service, region, time.Now()); err != nil {
			t.Fatal(err)
		}
		return req
	}
	if status, b := do(t, signed(creds, "us-east-1", "es", body)); status != 200 {
		t.Fatalf("signed request: %d %s", status, b)
	}
	wrongSecret := creds
	wrongSecret.SecretAccessKey = "OTHER"
	for name, req := range map[string]*http.Request{
		"wrong secret":  signed(wrongSecret, "us-east-1", "es", body),
		"wrong region":  signed(creds, "eu-west-1", "es", body),
		"wrong service": signed(creds, "us-east-1", "aoss", body),
		"body changed":  signed(creds, "us-east-1", "es", strings.Replace(body, "1}", "2}", 1)),
	} {
		if status, b := do(t, req); status != 403 {
			t.Errorf("%s: %d %s, want 403", name, status, b)
		}
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/", nil)
	if status, _ := do(t, req); status != 403 {
		t.Errorf("unsigned: %d, want 403", status)
	}
}

func TestStartTLS(t *testing.T) {
	s := StartTLS(t)
	if !strings.HasPrefix(s.URL, "https://") || !bytes.HasPrefix(s.CertPEM(), []byte("-----BEGIN CERTIFICATE-----")) {
		t.Errorf("URL %s, cert %q", s.URL, s.CertPEM())
	}
	if Start(t).CertPEM() != nil {
		t.Error("plain server has a certificate")
	}
}
