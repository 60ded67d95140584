package main

import (
	"strings"
	"testing"
)

const stream = `{"Action":"start","Package":"example.com/a"}
{"Action":"run","Package":"example.com/a","Test":"TestOK"}
{"Action":"output","Package":"example.com/a","Test":"TestOK","Output":"=== RUN   TestOK\n"}
{"Action":"output","Package":"example.com/a","Test":"TestOK","Output":"    a_test.go:9: chatter\n"}
{"Action":"pass","Package":"example.com/a","Test":"TestOK"}
{"Action":"run","Package":"example.com/a","Test":"TestStack"}
{"Action":"output","Package":"example.com/a","Test":"TestStack","Output":"=== RUN   TestStack\n"}
{"Action":"output","Package":"example.com/a","Test":"TestStack","Output":"    a_test.go:12: skipped: needs the local AWS stack\n"}
{"Action":"output","Package":"example.com/a","Test":"TestStack","Output":"--- SKIP: TestStack (0.00s)\n"}
{"Action":"skip","Package":"example.com/a","Test":"TestStack"}
{"Action":"run","Package":"example.com/a","Test":"TestBad"}
{"Action":"output","Package":"example.com/a","Test":"TestBad","Output":"=== RUN   TestBad\n"}
{"Action":"output","Package":"example.com/a","Test":"TestBad","Output":"    a_test.go:20: got 1, want 2\n"}
{"Action":"output","Package":"example.com/a","Test":"TestBad","Output":"--- FAIL: TestBad (0.00s)\n"}
{"Action":"fail","Package":"example.com/a","Test":"TestBad"}
{"Action":"output","Package":"example.com/a","Output":"FAIL\n"}
{"Action":"output","Package":"example.com/a","Output":"FAIL\texample.com/a\t0.01s\n"}
{"Action":"fail","Package":"example.com/a"}
{"Action":"run","Package":"example.com/b","Test":"TestStackToo"}
{"Action":"output","Package":"example.com/b","Test":"TestStackToo","Output":"    b_test.go:3: skipped: needs the local AWS stack\n"}
{"Action":"skip","Package":"example.com/b","Test":"TestStackToo"}
{"Action":"output","Package":"example.com/b","Output":"PASS\n"}
{"Action":"output","Package":"example.com/b","Output":"ok  \texample.com/b\t0.02s\n"}
{"Action":"pass","Package":"example.com/b"}
not json: a line go vet wrote
`

func TestSummaryCountsAndShows(t *testing.T) {
	var out strings.Builder
	if run(strings.NewReader(stream), &out) {
		t.Error("run reported success for a stream with a failed test")
	}
	got := out.String()
	for _, want := range []string{
		"    a_test.go:20: got 1, want 2\n--- FAIL: TestBad (0.00s)\n", // a failed test's output
		"FAIL\texample.com/a\t0.01s\n",                                 // go test's own package lines
		"ok  \texample.com/b\t0.02s\n",
		"not json: a line go vet wrote\n",
		"  2: needs the local AWS stack\n      example.com/a: TestStack\n      example.com/b: TestStackToo\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"chatter", "=== RUN", "PASS\n"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("output has %q, which go test shows only with -v:\n%s", unwanted, got)
		}
	}
	if !strings.HasSuffix(got, "\n1 passed, 1 failed, 2 skipped\n") {
		t.Errorf("output does not end with the summary line:\n%s", got)
	}
}

func TestSummaryOfAPassingRun(t *testing.T) {
	var out strings.Builder
	in := `{"Action":"pass","Package":"p","Test":"TestA"}` + "\n" + `{"Action":"pass","Package":"p"}` + "\n"
	if !run(strings.NewReader(in), &out) || !strings.HasSuffix(out.String(), "\n1 passed, 0 failed, 0 skipped\n") {
		t.Errorf("run = false or output %q", out.String())
	}
}

func TestSummaryOfABuildFailure(t *testing.T) {
	var out strings.Builder
	in := `{"ImportPath":"p [p.test]","Action":"build-output","Output":"p/a.go:3:1: syntax error\n"}
{"ImportPath":"p [p.test]","Action":"build-fail"}
{"Action":"output","Package":"p","Output":"FAIL\tp [build failed]\n"}
{"Action":"fail","Package":"p","FailedBuild":"p [p.test]"}
`
	if run(strings.NewReader(in), &out) {
		t.Error("run reported success for a build failure")
	}
	if !strings.Contains(out.String(), "p/a.go:3:1: syntax error\n") || !strings.Contains(out.String(), "FAIL\tp [build failed]\n") {
		t.Errorf("build failure not shown:\n%s", out.String())
	}
}
