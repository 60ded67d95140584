package edge

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestServiceFromCredentialScope(t *testing.T) {
	cases := map[string]string{
		"AWS4-HMAC-SHA256 Credential=test/20261204/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=ab": "kinesis",
		"AWS4-HMAC-SHA256 Credential=AKID/20261204/eu-west-1/dynamodb/aws4_request,SignedHeaders=host,Signature=cd":             "dynamodb",
		"Bearer token": "",
		"AWS4-HMAC-SHA256 Credential=test/20261204/us-east-1/s3": "",
	}
	for auth, want := range cases {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set("Authorization", auth)
		if got := Service(r); got != want {
			t.Errorf("Service(%q) = %q, want %q", auth, got, want)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/bucket/key?X-Amz-Credential=test%2F20261204%2Fus-east-1%2Fs3%2Faws4_request", nil)
	if got := Service(r); got != "s3" {
		t.Errorf("presigned URL: %q, want s3", got)
	}
}

// TestRoutesByServiceAndKeepsTheHost: two backends stand in for two emulators; each gets only
// its service's requests, with the Host header the client signed.
func TestRoutesByServiceAndKeepsTheHost(t *testing.T) {
	backend := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, name+" "+r.Host+" "+r.URL.Path)
		}))
	}
	kin, ddb := backend("kinesis-backend"), backend("dynamodb-backend")
	defer kin.Close()
	defer ddb.Close()
	router, err := New(map[string]string{"kinesis": kin.URL, "dynamodb": ddb.URL})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(router)
	defer front.Close()
	call := func(service string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, front.URL+"/x", strings.NewReader("{}"))
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20261204/us-east-1/"+service+"/aws4_request, SignedHeaders=host, Signature=00")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	host := strings.TrimPrefix(front.URL, "http://")
	if code, body := call("kinesis"); code != 200 || body != "kinesis-backend "+host+" /x" {
		t.Errorf("kinesis: %d %q", code, body)
	}
	if code, body := call("dynamodb"); code != 200 || body != "dynamodb-backend "+host+" /x" {
		t.Errorf("dynamodb: %d %q", code, body)
	}
	if code, body := call("sqs"); code != http.StatusNotImplemented || !strings.Contains(body, `no backend for service "sqs"`) {
		t.Errorf("sqs: %d %q", code, body)
	}
	if c := router.Counts(); c["kinesis"] != 1 || c["dynamodb"] != 1 || c["sqs"] != 0 {
		t.Errorf("counts %v", c)
	}
}

func TestNewRejectsABadBackend(t *testing.T) {
	if _, err := New(map[string]string{"s3": "127.0.0.1:4566"}); err == nil || !strings.Contains(err.Error(), "backend of s3") {
		t.Fatalf("err = %v", err)
	}
}
