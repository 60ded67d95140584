package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var (
	// S3 bucket names: 3 to 63 of [a-z0-9.-], starting and ending with a letter or digit.
	validBucket = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	// Kinesis streams and DynamoDB tables allow [a-zA-Z0-9_.-]; SQS queues [a-zA-Z0-9_-] up to 80.
	validStream = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,128}$`)
	validQueue  = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,80}$`)
)

func TestUniqueNameIsValidEverywhere(t *testing.T) {
	prefixes := []string{"", "-", "stream", "Bucket_X", "xn", "sthree", "ünïcode", strings.Repeat("p", 90)}
	subtests := []string{"plain", "with spaces/and/slashes", "UPPER_case.dots", "--", "ÄÖÜ", strings.Repeat("long", 30)}
	for _, sub := range subtests {
		t.Run(sub, func(t *testing.T) {
			for _, p := range prefixes {
				n := UniqueName(t, p)
				if !validBucket.MatchString(n) || !validStream.MatchString(n) || !validQueue.MatchString(n) {
					t.Errorf("UniqueName(%q) = %q: not a valid bucket, stream and queue name", p, n)
				}
				if strings.Contains(n, "--") || strings.HasPrefix(n, "xn-") || strings.HasPrefix(n, "sthree-") {
					t.Errorf("UniqueName(%q) = %q: has a form S3 reserves", p, n)
				}
				if len(n) > maxNameLen {
					t.Errorf("UniqueName(%q) = %q: %d characters, want at most %d", p, n, len(n), maxNameLen)
				}
			}
		})
	}
}

func TestUniqueNameKeepsPrefixAndTestName(t *testing.T) {
	n := UniqueName(t, "Demo")
	if want := "demo-testuniquenamekeepsprefixandtestname-"; !strings.HasPrefix(n, want) {
		t.Errorf("UniqueName = %q, want prefix %q", n, want)
	}
}

func TestUniqueNameDoesNotRepeat(t *testing.T) {
	seen := map[string]bool{}
	for range 10000 {
		n := UniqueName(t, "x")
		if seen[n] {
			t.Fatalf("UniqueName returned %q twice", n)
		}
		seen[n] = true
	}
}

func TestPutChunksRespectRequestLimits(t *testing.T) {
	big := make([]byte, 1<<20) // the largest record Kinesis takes
	cases := []struct {
		name string
		recs []Rec
		want [][2]int
	}{
		{"none", nil, nil},
		{"one", []Rec{{Data: []byte("a")}}, [][2]int{{0, 1}}},
		{"500 small", make([]Rec, 500), [][2]int{{0, 500}}},
		{"1201 small", make([]Rec, 1201), [][2]int{{0, 500}, {500, 1000}, {1000, 1201}}},
		{"6 of 1 MiB", []Rec{{Data: big}, {Data: big}, {Data: big}, {Data: big}, {Data: big}, {Data: big}},
			[][2]int{{0, 4}, {4, 6}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := putChunks(tc.recs)
			if len(got) != len(tc.want) {
				t.Fatalf("putChunks = %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("putChunks = %v, want %v", got, tc.want)
				}
			}
			for _, ch := range got {
				size := 0
				for i := ch[0]; i < ch[1]; i++ {
					size += len(tc.recs[i].Data) + len(partitionKey(tc.recs, i))
				}
				if ch[1]-ch[0] > putRecordsMaxRecords || size > putRecordsMaxBytes {
					t.Errorf("chunk %v: %d records, %d bytes: over the PutRecords limits", ch, ch[1]-ch[0], size)
				}
			}
		})
	}
}

// The scripts in deploy/local read their ports from ports.env; they must match the constants.
func TestPortsEnvMatchesConstants(t *testing.T) {
	f, err := os.Open("../../deploy/local/ports.env")
	if err != nil {
		t.Fatalf("open ports.env: %v", err)
	}
	defer f.Close()
	got := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("ports.env: line %q is not KEY=VALUE", line)
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("ports.env: %s=%q is not a port number", k, v)
		}
		got[k] = n
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read ports.env: %v", err)
	}
	want := map[string]int{
		"KINESIS_LOCAL_PORT":     KinesisLocalPort,
		"KINESIS_LOCAL_TLS_PORT": KinesisLocalTLSPort,
		"KINESALITE_PORT":        KinesalitePort,
		"DYNALITE_PORT":          DynaLitePort,
		"MOTO_PORT":              MotoPort,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("ports.env: %s=%d, want %d", k, got[k], w)
		}
	}
}

func TestEndpointsFromEnvironment(t *testing.T) {
	t.Setenv("SHARDHOSE_TEST_KINESIS_ENDPOINT", "http://127.0.0.1:4566")
	t.Setenv("SHARDHOSE_TEST_MOTO_ENDPOINT", "")
	e := Endpoints()
	if e.Kinesis != "http://127.0.0.1:4566" {
		t.Errorf("Kinesis = %q, want the value of SHARDHOSE_TEST_KINESIS_ENDPOINT", e.Kinesis)
	}
	if e.Moto != "http://127.0.0.1:14571" {
		t.Errorf("Moto = %q, want the fixed port when the variable is empty", e.Moto)
	}
	if e.Region != "us-east-1" {
		t.Errorf("Region = %q, want us-east-1", e.Region)
	}
}

// gateTB records what the gate did to a test: skipped or failed it, with the reason.
type gateTB struct {
	testing.TB
	skipped, failed string
}

type gateStop struct{}

func (g *gateTB) Helper() {}
func (g *gateTB) Skip(args ...any) {
	g.skipped = fmt.Sprint(args...)
	panic(gateStop{})
}
func (g *gateTB) Fatalf(format string, args ...any) {
	g.failed = fmt.Sprintf(format, args...)
	panic(gateStop{})
}

// runGate runs gate against a recording TB and returns it once the gate stopped the test.
func runGate(t *testing.T, gate func(testing.TB)) *gateTB {
	t.Helper()
	g := &gateTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(gateStop); !ok {
					panic(r)
				}
			}
		}()
		gate(g)
	}()
	return g
}

// With no stack (every endpoint a closed port), Require skips saying why, or fails under
// SHARDHOSE_TEST_REQUIRE_STACK=1.
func TestRequireSkipsOrFailsWithTheReason(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	for _, v := range []string{"SHARDHOSE_TEST_KINESIS_ENDPOINT", "SHARDHOSE_TEST_KINESALITE_ENDPOINT", "SHARDHOSE_TEST_DYNAMODB_ENDPOINT", "SHARDHOSE_TEST_MOTO_ENDPOINT"} {
		t.Setenv(v, closed)
	}
	t.Setenv(EnvRequireStack, "")
	g := runGate(t, func(tb testing.TB) { Require(tb) })
	if g.failed != "" || !strings.Contains(g.skipped, "needs the local AWS stack") {
		t.Errorf("without %s: skipped %q, failed %q; want a skip saying the stack is needed", EnvRequireStack, g.skipped, g.failed)
	}
	t.Setenv(EnvRequireStack, "1")
	g = runGate(t, func(tb testing.TB) { Require(tb) })
	if g.skipped != "" || !strings.Contains(g.failed, EnvRequireStack+"=1") || !strings.Contains(g.failed, "needs the local AWS stack") {
		t.Errorf("with %s=1: skipped %q, failed %q; want a failure saying the stack is needed", EnvRequireStack, g.skipped, g.failed)
	}
}

func TestSkipOrFail(t *testing.T) {
	t.Setenv(EnvRequireStack, "")
	if g := runGate(t, func(tb testing.TB) { SkipOrFail(tb, "needs a moto_server") }); g.skipped != "skipped: needs a moto_server" || g.failed != "" {
		t.Errorf("skipped %q, failed %q", g.skipped, g.failed)
	}
	t.Setenv(EnvRequireStack, "1")
	if g := runGate(t, func(tb testing.TB) { SkipOrFail(tb, "needs a moto_server") }); g.skipped != "" || !strings.HasSuffix(g.failed, "needs a moto_server") {
		t.Errorf("skipped %q, failed %q", g.skipped, g.failed)
	}
}
