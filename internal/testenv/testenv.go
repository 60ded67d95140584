// Package testenv connects integration tests to the local AWS stack that deploy/local starts
// (kinesis-local, kinesalite, dynalite, moto on fixed 127.0.0.1 ports).
//
// Require is the one gate of every test that needs a server: it skips the test, saying why,
// under -short (which means no servers: `make test-unit`) and when the stack does not answer.
// Under SHARDHOSE_TEST_REQUIRE_STACK=1 (set by `make test` and CI) it fails instead of
// skipping, in both cases: a run that was meant to exercise the real servers can never pass by
// skipping them. A test that needs something else the stack's machine provides (a moto_server
// executable) says so through SkipOrFail, which follows the same rule.
//
// Which server for what:
//   - kinesis-local (Env.Kinesis) is the Kinesis engine LocalStack runs; use it for behaviour:
//     iterators, resharding (ChildShards), MillisBehindLatest. It keeps every record in memory
//     until its stream is deleted, so keep record counts modest (thousands, not hundreds of
//     thousands) and let CreateStream's cleanup delete the stream.
//   - kinesalite (Env.Kinesalite) is about 20 times faster; use it for volume and throughput.
//     It has no UpdateShardCount and a closed shard ends without ChildShards.
//   - dynalite (Env.DynamoDB) for lease and checkpoint tables.
//   - moto (Env.Moto) for S3, SQS, SNS and Firehose; never for Kinesis (it loses records).
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Fixed ports of the local stack; deploy/local/ports.env holds the same numbers for the scripts.
const (
	KinesisLocalPort    = 14567 // kinesis-local (kinesis-mock), plain HTTP
	KinesisLocalTLSPort = 14568 // kinesis-local, HTTPS with a self-signed certificate
	KinesalitePort      = 14569 // kinesalite, for throughput
	DynaLitePort        = 14570 // dynalite
	MotoPort            = 14571 // moto: S3, SQS, SNS, Firehose
)

// Region is the region every client of the local stack uses.
const Region = "us-east-1"

// EnvRequireStack names the variable that turns an unreachable stack from a skip into a failure.
const EnvRequireStack = "SHARDHOSE_TEST_REQUIRE_STACK"

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
		Region:     Region,
	}
}

// Require returns the local stack's endpoints for a test that needs its servers. Under -short,
// or when a server does not answer, it skips the test saying why, or fails it under
// SHARDHOSE_TEST_REQUIRE_STACK=1.
func Require(t testing.TB) Env {
	t.Helper()
	NeedsServers(t, "the local AWS stack (`make test` starts it)")
	e := Endpoints()
	for _, s := range []struct{ name, ep string }{
		{"kinesis-local", e.Kinesis},
		{"kinesalite", e.Kinesalite},
		{"dynalite", e.DynamoDB},
		{"moto", e.Moto},
	} {
		if err := reachable(s.ep); err != nil {
			SkipOrFail(t, fmt.Sprintf("needs the local AWS stack, which is not running: %s at %s does not answer (%v); `make test` starts it, or `make local-up`", s.name, s.ep, err))
		}
	}
	return e
}

// NeedsServers marks a test that needs servers (what names them): under -short it is skipped,
// saying so, or failed under SHARDHOSE_TEST_REQUIRE_STACK=1. Require calls it; a test that talks
// to another server (a real OpenSearch cluster) calls it itself.
func NeedsServers(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		SkipOrFail(t, "needs "+what+", and -short runs no servers")
	}
}

// SkipOrFail skips the test with why, or fails it with why under SHARDHOSE_TEST_REQUIRE_STACK=1.
func SkipOrFail(t testing.TB, why string) {
	t.Helper()
	if StackRequired() {
		t.Fatalf("%s=1, but this test cannot run: %s", EnvRequireStack, why)
	}
	t.Skip("skipped: " + why)
}

// StackRequired reports whether SHARDHOSE_TEST_REQUIRE_STACK=1: tests that need servers must
// run, not skip.
func StackRequired() bool { return os.Getenv(EnvRequireStack) == "1" }

func reachable(ep string) error {
	u, err := url.Parse(ep)
	if err != nil {
		return err
	}
	if u.Host == "" {
		return fmt.Errorf("endpoint %q has no host", ep)
	}
	c, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// maxNameLen keeps names within the tightest limit of the services they name: 63 for S3 buckets.
const maxNameLen = 63

var nameSeq atomic.Uint64

// UniqueName returns a name for a stream, table, bucket or queue that no other test uses, in this
// process or any other: prefix plus the test's name, lower-cased, then a random suffix. The result
// is at most 63 characters of [a-z0-9-], starts and ends with a letter or digit and has no "--",
// so it is valid as a Kinesis stream, DynamoDB table, S3 bucket and SQS queue name alike.
func UniqueName(t testing.TB, prefix string) string {
	t.Helper()
	var b strings.Builder
	dash := true // drops leading dashes and collapses runs of them
	for _, r := range strings.ToLower(prefix + "-" + t.Name()) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	s := b.String()
	if s == "" || strings.HasPrefix(s, "xn-") || strings.HasPrefix(s, "sthree-") {
		s = "t-" + s // S3 reserves these prefixes
	}

	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatalf("unique name: read random bytes: %v", err)
	}
	suffix := fmt.Sprintf("-%s%x", hex.EncodeToString(rnd[:]), nameSeq.Add(1))
	if len(s)+len(suffix) > maxNameLen {
		s = s[:maxNameLen-len(suffix)]
	}
	return strings.TrimRight(s, "-") + suffix
}
