package eventfilter

import (
	"testing"
)

// FuzzCompileAndMatch compiles arbitrary patterns and matches arbitrary data with them. A
// pattern that compiles must compile again from its String(), agree with itself on MatchJSON,
// and give Match on Decode's value the same answer as MatchJSON; CompileKinesis accepts only
// what Compile accepts. Errors must say something.
func FuzzCompileAndMatch(f *testing.F) {
	patterns := []string{
		`{"data": {"type": ["order"]}}`,
		`{"data": {"amount": [{"numeric": [">", 100, "<=", 1000]}]}}`,
		`{"data": {"name": [{"prefix": "ord"}], "tag": [{"suffix": ".json"}]}}`,
		`{"data": {"state": [{"anything-but": ["done", "failed"]}]}}`,
		`{"data": {"a": [{"exists": false}], "b": [{"equals-ignore-case": "X"}]}}`,
		`{"partitionKey": ["k1"], "data": {"n": [1, 2.5, null, true]}}`,
		`{"$or": [{"data": {"x": [1]}}, {"data": {"y": [2]}}]}`,
		`{"data": {"ip": [{"cidr": "10.0.0.0/24"}]}}`,
		`{"data": {"w": [{"wildcard": "a*b*c"}]}}`,
		`{}`, `[]`, `{"data": []}`, `{"data": {"x": [{"numeric": [">"]}]}}`,
	}
	events := []string{`{"type":"order","amount":150,"name":"order-1","tag":"x.json"}`, `{"n":1}`, `not json`, `[1,2]`, `{"a":null}`, `12345678901234567890`}
	for i, p := range patterns {
		f.Add(p, events[i%len(events)])
	}
	f.Fuzz(func(t *testing.T, src, data string) {
		p, err := Compile(src)
		if _, kerr := CompileKinesis(src); kerr == nil && err != nil {
			t.Fatalf("CompileKinesis(%q) accepted what Compile refuses: %v", src, err)
		}
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("Compile(%q): empty error", src)
			}
			return
		}
		again, err := Compile(p.String())
		if err != nil {
			t.Fatalf("Compile(%q) succeeded, then failed on its String(): %v", src, err)
		}
		event := []byte(data)
		m := p.MatchJSON(event)
		if m != p.MatchJSON(event) || m != again.MatchJSON(event) {
			t.Fatalf("pattern %q matched %q inconsistently", src, data)
		}
		v, err := Decode(event)
		if err != nil {
			if m {
				t.Fatalf("pattern %q matched %q, which does not decode: %v", src, data, err)
			}
			return
		}
		if p.Match(v) != m {
			t.Fatalf("pattern %q: Match(Decode(%q)) = %v, MatchJSON = %v", src, data, !m, m)
		}
	})
}
