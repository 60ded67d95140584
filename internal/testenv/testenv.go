// Package testenv connects integration tests to the local AWS stack that deploy/local starts
// (kinesis-local, kinesalite, dynalite, moto on fixed 127.0.0.1 ports).
//
// Integration tests call Require. When the stack is not reachable the test is skipped, unless
// SHARDHOSE_TEST_REQUIRE_STACK=1 (set by `make test` and CI), in which case it fails: a run that
// was meant to exercise the real servers can never pass by skipping them.
package testenv

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// Fixed ports of the local stack; deploy/local/ports.env holds the same numbers for the scripts.
const (
	KinesisLocalPort = 14567 // kinesis-local (kinesis-mock), plain HTTP
	KinesalitePort   = 14569 // kinesalite, for throughput
	DynaLitePort     = 14570 // dynalite
	MotoPort         = 14571 // moto: S3, SQS, SNS, Firehose
)

// Env holds the endpoints of the local stack.
type Env struct {
	Kinesis    string // kinesis-local: behaviour tests
	Kinesalite string // kinesalite: throughput
	DynamoDB   string
	Moto       string // S3, SQS, SNS, Firehose
	Region     string
}

func endpoint(envVar string, port int) string {
	if v := os.Getenv(envVar); v != "" {
		return v
	}
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// Endpoints returns the stack's endpoints, from SHARDHOSE_TEST_*_ENDPOINT variables or the fixed ports.
func Endpoints() Env {
	return Env{
		Kinesis:    endpoint("SHARDHOSE_TEST_KINESIS_ENDPOINT", KinesisLocalPort),
		Kinesalite: endpoint("SHARDHOSE_TEST_KINESALITE_ENDPOINT", KinesalitePort),
		DynamoDB:   endpoint("SHARDHOSE_TEST_DYNAMODB_ENDPOINT", DynaLitePort),
		Moto:       endpoint("SHARDHOSE_TEST_MOTO_ENDPOINT", MotoPort),
		Region:     "us-east-1",
	}
}

// Require returns the local stack's endpoints, skipping or failing the test when a server does not answer.
func Require(t testing.TB) Env {
	t.Helper()
	e := Endpoints()
	for name, ep := range map[string]string{"kinesis-local": e.Kinesis, "dynalite": e.DynamoDB, "moto": e.Moto} {
		if err := reachable(ep); err != nil {
			if os.Getenv("SHARDHOSE_TEST_REQUIRE_STACK") == "1" {
				t.Fatalf("local stack: %s at %s does not answer (%v); start it with `make local-up`", name, ep, err)
			}
			t.Skipf("local stack not running (%s at %s: %v); `make test` starts it", name, ep, err)
		}
	}
	return e
}

func reachable(ep string) error {
	u, err := url.Parse(ep)
	if err != nil {
		return err
	}
	c, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// UniqueName returns a name for a stream, table, bucket or queue that no other test uses:
// prefix plus the test's name and the time, lower-cased and limited to what S3 bucket names allow.
func UniqueName(t testing.TB, prefix string) string {
	t.Helper()
	n := strings.ToLower(prefix + "-" + t.Name())
	var b strings.Builder
	for _, r := range n {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		default:
			b.WriteRune('-')
		}
	}
	s := b.String()
	suffix := fmt.Sprintf("-%x", time.Now().UnixNano()&0xffffffffff)
	if len(s)+len(suffix) > 60 {
		s = s[:60-len(suffix)]
	}
	return strings.Trim(s, "-") + suffix
}
