package awsclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/shardhose/shardhose/config"
)

func TestEndpoint(t *testing.T) {
	perService := config.Endpoints{
		Kinesis: "http://k:1", DynamoDB: "http://d:2", S3: "http://s3:3", SQS: "http://q:4",
		SNS: "http://n:5", Firehose: "http://f:6", Lambda: "http://l:7",
	}
	cases := []struct {
		name    string
		cfg     config.AWS
		service string
		want    string
	}{
		{"nothing set", config.AWS{}, ServiceKinesis, ""},
		{"shared only", config.AWS{Endpoint: "http://all:4566"}, ServiceKinesis, "http://all:4566"},
		{"shared for s3", config.AWS{Endpoint: "http://all:4566"}, ServiceS3, "http://all:4566"},
		{"per-service wins", config.AWS{Endpoint: "http://all:4566", Endpoints: config.Endpoints{Kinesis: "http://k:1"}}, ServiceKinesis, "http://k:1"},
		{"other service falls back to shared", config.AWS{Endpoint: "http://all:4566", Endpoints: config.Endpoints{Kinesis: "http://k:1"}}, ServiceDynamoDB, "http://all:4566"},
		{"per-service without shared", config.AWS{Endpoints: config.Endpoints{S3: "http://s3:3"}}, ServiceS3, "http://s3:3"},
		{"per-service for another service only", config.AWS{Endpoints: config.Endpoints{S3: "http://s3:3"}}, ServiceSQS, ""},
		{"kinesis", config.AWS{Endpoints: perService}, ServiceKinesis, "http://k:1"},
		{"dynamodb", config.AWS{Endpoints: perService}, ServiceDynamoDB, "http://d:2"},
		{"s3", config.AWS{Endpoints: perService}, ServiceS3, "http://s3:3"},
		{"sqs", config.AWS{Endpoints: perService}, ServiceSQS, "http://q:4"},
		{"sns", config.AWS{Endpoints: perService}, ServiceSNS, "http://n:5"},
		{"firehose", config.AWS{Endpoints: perService}, ServiceFirehose, "http://f:6"},
		{"lambda", config.AWS{Endpoints: perService}, ServiceLambda, "http://l:7"},
		{"SDK ServiceID Kinesis", config.AWS{Endpoints: perService}, kinesis.ServiceID, "http://k:1"},
		{"SDK ServiceID DynamoDB", config.AWS{Endpoints: perService}, dynamodb.ServiceID, "http://d:2"},
		{"SDK ServiceID S3", config.AWS{Endpoints: perService}, s3.ServiceID, "http://s3:3"},
		{"SDK ServiceID SQS", config.AWS{Endpoints: perService}, sqs.ServiceID, "http://q:4"},
		{"unknown service gets shared", config.AWS{Endpoint: "http://all:4566", Endpoints: perService}, "kafka", "http://all:4566"},
	}
	for _, c := range cases {
		if got := Endpoint(c.cfg, c.service); got != c.want {
			t.Errorf("%s: Endpoint(%q) = %q, want %q", c.name, c.service, got, c.want)
		}
	}
}

func staticAWS() config.AWS {
	return config.AWS{
		Region:      "us-east-1",
		Credentials: config.Credentials{Source: "static", AccessKeyID: "test", SecretAccessKey: "secret", SessionToken: "tok"},
	}
}

func TestLoadStatic(t *testing.T) {
	awsCfg, err := Load(t.Context(), staticAWS(), nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if awsCfg.Region != "us-east-1" {
		t.Errorf("region = %q", awsCfg.Region)
	}
	creds, err := awsCfg.Credentials.Retrieve(t.Context())
	if err != nil {
		t.Fatalf("Retrieve: %v", err)
	}
	if creds.AccessKeyID != "test" || creds.SecretAccessKey != "secret" || creds.SessionToken != "tok" {
		t.Errorf("credentials = %+v", creds)
	}
	if got := awsCfg.Retryer().MaxAttempts(); got != MaxAttempts {
		t.Errorf("retryer attempts = %d, want %d", got, MaxAttempts)
	}
}

func TestLoadRejectsBadCredentials(t *testing.T) {
	c := staticAWS()
	c.Credentials.SecretAccessKey = ""
	if _, err := Load(t.Context(), c, nil); err == nil || !strings.Contains(err.Error(), "secret_access_key") {
		t.Errorf("static without secret: err = %v", err)
	}
	c = staticAWS()
	c.Credentials.Source = "env"
	if _, err := Load(t.Context(), c, nil); err == nil || !strings.Contains(err.Error(), `"env"`) {
		t.Errorf("unknown source: err = %v", err)
	}
}

// AWS_CA_BUNDLE makes the SDK rebuild the HTTP client's TLS settings, which fails for a plain
// *http.Client; Load must work with it set, for both credential sources.
func TestLoadWithCABundle(t *testing.T) {
	t.Setenv("AWS_CA_BUNDLE", writeCA(t))
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	if _, err := Load(t.Context(), staticAWS(), nil); err != nil {
		t.Errorf("static: %v", err)
	}
	c := staticAWS()
	c.Credentials = config.Credentials{Source: "default"}
	if _, err := Load(t.Context(), c, nil); err != nil {
		t.Errorf("default: %v", err)
	}
}

func writeCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestClientsTakeTheirEndpoint(t *testing.T) {
	c := staticAWS()
	c.Endpoint = "http://all:4566"
	c.Endpoints = config.Endpoints{Kinesis: "http://k:1", DynamoDB: "http://d:2"}
	awsCfg, err := Load(t.Context(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]*string{
		"kinesis":  Kinesis(awsCfg, c).Options().BaseEndpoint,
		"dynamodb": DynamoDB(awsCfg, c).Options().BaseEndpoint,
		"s3":       S3(awsCfg, c).Options().BaseEndpoint,
		"sqs":      SQS(awsCfg, c).Options().BaseEndpoint,
	} {
		want := Endpoint(c, name)
		if aws.ToString(got) != want {
			t.Errorf("%s BaseEndpoint = %q, want %q", name, aws.ToString(got), want)
		}
	}
	plain := staticAWS()
	if ep := Kinesis(awsCfg, plain).Options().BaseEndpoint; ep != nil {
		t.Errorf("no endpoint configured, BaseEndpoint = %q", *ep)
	}
}

func TestS3PathStyle(t *testing.T) {
	cases := []struct {
		name string
		set  func(*config.AWS)
		want bool
	}{
		{"AWS itself", func(*config.AWS) {}, false},
		{"asked for", func(c *config.AWS) { c.S3UsePathStyle = true }, true},
		{"shared endpoint", func(c *config.AWS) { c.Endpoint = "http://all:4566" }, true},
		{"s3 endpoint", func(c *config.AWS) { c.Endpoints.S3 = "http://s3:3" }, true},
		{"another service's endpoint", func(c *config.AWS) { c.Endpoints.Kinesis = "http://k:1" }, false},
	}
	for _, tc := range cases {
		c := staticAWS()
		tc.set(&c)
		awsCfg, err := Load(t.Context(), c, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := S3(awsCfg, c).Options().UsePathStyle; got != tc.want {
			t.Errorf("%s: UsePathStyle = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The S3 client sends to the configured endpoint, path-style, signed with the static keys.
func TestS3RequestGoesToTheEndpoint(t *testing.T) {
	var mu sync.Mutex
	var gotPath, gotHost, gotAuth, gotBody string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		gotPath, gotHost, gotAuth, gotBody = r.URL.Path, r.Host, r.Header.Get("Authorization"), string(b)
		mu.Unlock()
		w.Header().Set("ETag", `"x"`)
	}))
	defer srv.Close()
	c := staticAWS()
	c.Endpoints.S3 = srv.URL
	awsCfg, err := Load(t.Context(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err = S3(awsCfg, c).PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("my-bucket"), Key: aws.String("a/b.json"), Body: strings.NewReader("hello"),
	})
	if err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if gotPath != "/my-bucket/a/b.json" {
		t.Errorf("path = %q, want path-style /my-bucket/a/b.json", gotPath)
	}
	if gotHost != strings.TrimPrefix(srv.URL, "http://") {
		t.Errorf("host = %q, want %q", gotHost, srv.URL)
	}
	if !strings.Contains(gotAuth, "Credential=test/") {
		t.Errorf("Authorization = %q, want it signed with access key test", gotAuth)
	}
	if !strings.Contains(gotBody, "hello") {
		t.Errorf("body = %q", gotBody)
	}
}

// A server that accepts and never answers must not hold a call past ctx, and the SDK must not
// retry it more than MaxAttempts times.
func TestCallsEndWithTheirContext(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	testDone := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		_, _ = io.Copy(io.Discard, r.Body) // the server notices a closed connection only after the body
		select {
		case <-r.Context().Done():
		case <-testDone:
		}
	}))
	defer srv.Close()
	defer close(testDone) // runs before srv.Close, which waits for handlers
	c := staticAWS()
	c.Endpoint = srv.URL
	awsCfg, err := Load(t.Context(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Kinesis(awsCfg, c).ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")})
	if err == nil {
		t.Fatal("ListShards against a silent server succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("call took %v after a 300ms context", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls > MaxAttempts {
		t.Errorf("server saw %d attempts, want at most %d", calls, MaxAttempts)
	}
}
