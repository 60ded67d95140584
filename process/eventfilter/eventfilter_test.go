package eventfilter

import (
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	cases := []struct {
		name    string
		pattern string
		yes, no []string // events that must match, and must not
	}{
		{
			name:    "exact string",
			pattern: `{"event_type": ["purchase"]}`,
			yes:     []string{`{"event_type": "purchase"}`, `{"event_type": ["view", "purchase"]}`},
			no:      []string{`{"event_type": "view"}`, `{"event_type": "Purchase"}`, `{}`, `{"other": "purchase"}`, `{"event_type": {"x": "purchase"}}`},
		},
		{
			name:    "array of alternatives is OR",
			pattern: `{"event_type": ["purchase", "view"]}`,
			yes:     []string{`{"event_type": "purchase"}`, `{"event_type": "view"}`},
			no:      []string{`{"event_type": "add_to_cart"}`},
		},
		{
			name:    "fields are AND",
			pattern: `{"a": ["1"], "b": ["2"]}`,
			yes:     []string{`{"a": "1", "b": "2", "c": "3"}`},
			no:      []string{`{"a": "1"}`, `{"a": "1", "b": "3"}`},
		},
		{
			name:    "exact number matches by value, not by string",
			pattern: `{"amount": [100]}`,
			yes:     []string{`{"amount": 100}`, `{"amount": 100.0}`, `{"amount": 1e2}`},
			no:      []string{`{"amount": "100"}`, `{"amount": 100.5}`},
		},
		{
			name:    "large integers keep their digits",
			pattern: `{"account": [123456789012345678]}`,
			yes:     []string{`{"account": 123456789012345678}`},
			no:      []string{`{"account": "123456789012345678"}`},
		},
		{
			name:    "null",
			pattern: `{"user_id": [null]}`,
			yes:     []string{`{"user_id": null}`},
			no:      []string{`{}`, `{"user_id": "null"}`, `{"user_id": ""}`},
		},
		{
			name:    "empty string",
			pattern: `{"last_name": [""]}`,
			yes:     []string{`{"last_name": ""}`},
			no:      []string{`{"last_name": null}`, `{}`, `{"last_name": "x"}`},
		},
		{
			name:    "booleans",
			pattern: `{"ok": [true]}`,
			yes:     []string{`{"ok": true}`},
			no:      []string{`{"ok": false}`, `{"ok": "true"}`},
		},
		{
			name:    "prefix",
			pattern: `{"region": [{"prefix": "us-"}]}`,
			yes:     []string{`{"region": "us-east-1"}`, `{"region": "us-"}`},
			no:      []string{`{"region": "eu-west-1"}`, `{"region": "US-east-1"}`, `{"region": 5}`, `{}`},
		},
		{
			name:    "suffix",
			pattern: `{"file": [{"suffix": ".png"}]}`,
			yes:     []string{`{"file": "a.png"}`},
			no:      []string{`{"file": "a.jpg"}`, `{"file": "a.PNG"}`},
		},
		{
			name:    "equals-ignore-case",
			pattern: `{"name": [{"equals-ignore-case": "alice"}]}`,
			yes:     []string{`{"name": "ALICE"}`, `{"name": "Alice"}`, `{"name": "alice"}`},
			no:      []string{`{"name": "alicia"}`, `{}`},
		},
		{
			name:    "anything-but single string",
			pattern: `{"weather": [{"anything-but": "raining"}]}`,
			yes:     []string{`{"weather": "sunny"}`, `{"weather": 5}`, `{"weather": null}`},
			no:      []string{`{"weather": "raining"}`, `{}`},
		},
		{
			name:    "anything-but list of strings",
			pattern: `{"state": [{"anything-but": ["stopped", "overloaded"]}]}`,
			yes:     []string{`{"state": "running"}`, `{"state": ["stopped", "running"]}`},
			no:      []string{`{"state": "stopped"}`, `{"state": "overloaded"}`, `{"state": ["stopped"]}`},
		},
		{
			name:    "anything-but numbers",
			pattern: `{"x": [{"anything-but": [100, 200]}]}`,
			yes:     []string{`{"x": 300}`, `{"x": "100"}`},
			no:      []string{`{"x": 100}`, `{"x": 200.0}`},
		},
		{
			name:    "anything-but prefix",
			pattern: `{"state": [{"anything-but": {"prefix": "init"}}]}`,
			yes:     []string{`{"state": "running"}`},
			no:      []string{`{"state": "initializing"}`},
		},
		{
			name:    "anything-but suffix",
			pattern: `{"file": [{"anything-but": {"suffix": ".tmp"}}]}`,
			yes:     []string{`{"file": "a.txt"}`},
			no:      []string{`{"file": "a.tmp"}`},
		},
		{
			name:    "anything-but equals-ignore-case",
			pattern: `{"state": [{"anything-but": {"equals-ignore-case": ["Stopped", "DONE"]}}]}`,
			yes:     []string{`{"state": "running"}`},
			no:      []string{`{"state": "STOPPED"}`, `{"state": "done"}`},
		},
		{
			name:    "numeric range",
			pattern: `{"c": [{"numeric": [">", 0, "<=", 5]}]}`,
			yes:     []string{`{"c": 1}`, `{"c": 5}`, `{"c": 0.001}`, `{"c": [9, 3]}`},
			no:      []string{`{"c": 0}`, `{"c": 5.01}`, `{"c": "3"}`, `{}`, `{"c": -1}`},
		},
		{
			name:    "numeric equals",
			pattern: `{"price": [{"numeric": ["=", 301.8]}]}`,
			yes:     []string{`{"price": 301.8}`, `{"price": 3.018e2}`},
			no:      []string{`{"price": 301.81}`},
		},
		{
			name:    "numeric open bounds",
			pattern: `{"a": [{"numeric": ["<", 10]}], "b": [{"numeric": [">=", 10, "<", 20]}]}`,
			yes:     []string{`{"a": 9.99, "b": 10}`},
			no:      []string{`{"a": 10, "b": 10}`, `{"a": 1, "b": 20}`},
		},
		{
			name:    "exists true looks at leaves",
			pattern: `{"email": [{"exists": true}]}`,
			yes:     []string{`{"email": "a@b"}`, `{"email": null}`, `{"email": ["x"]}`},
			no:      []string{`{}`, `{"email": {"home": "a@b"}}`, `{"email": []}`},
		},
		{
			name:    "exists false",
			pattern: `{"email": [{"exists": false}]}`,
			yes:     []string{`{}`, `{"email": {"home": "a@b"}}`, `{"other": 1}`},
			no:      []string{`{"email": "a@b"}`, `{"email": null}`},
		},
		{
			name:    "value or absent",
			pattern: `{"tier": ["gold", {"exists": false}]}`,
			yes:     []string{`{"tier": "gold"}`, `{}`},
			no:      []string{`{"tier": "silver"}`},
		},
		{
			name:    "nested objects",
			pattern: `{"order": {"type": ["buy"], "qty": [{"numeric": [">", 100]}]}}`,
			yes:     []string{`{"order": {"type": "buy", "qty": 1000}}`},
			no:      []string{`{"order": {"type": "sell", "qty": 1000}}`, `{"order": {"type": "buy"}}`, `{"order": "buy"}`, `{}`},
		},
		{
			name:    "nested exists false under a missing parent",
			pattern: `{"customer": {"email": [{"exists": false}]}}`,
			yes:     []string{`{}`, `{"customer": {"phone": "1"}}`},
			no:      []string{`{"customer": {"email": "a@b"}}`},
		},
		{
			name:    "arrays of objects match within one element",
			pattern: `{"employees": {"first": ["Anna"], "last": ["Smith"]}}`,
			yes:     []string{`{"employees": [{"first": "John", "last": "Doe"}, {"first": "Anna", "last": "Smith"}]}`},
			no:      []string{`{"employees": [{"first": "Anna", "last": "Doe"}, {"first": "John", "last": "Smith"}]}`},
		},
		{
			name:    "$or across fields",
			pattern: `{"source": ["shop"], "$or": [{"event_type": ["purchase"]}, {"amount": [{"numeric": [">", 100]}]}]}`,
			yes:     []string{`{"source": "shop", "event_type": "purchase"}`, `{"source": "shop", "event_type": "view", "amount": 150}`},
			no:      []string{`{"source": "shop", "event_type": "view", "amount": 50}`, `{"source": "app", "event_type": "purchase"}`},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Compile(c.pattern)
			if err != nil {
				t.Fatalf("Compile(%s): %v", c.pattern, err)
			}
			for _, ev := range c.yes {
				if !p.MatchJSON([]byte(ev)) {
					t.Errorf("%s should match %s", c.pattern, ev)
				}
			}
			for _, ev := range c.no {
				if p.MatchJSON([]byte(ev)) {
					t.Errorf("%s should not match %s", c.pattern, ev)
				}
			}
		})
	}
}

func TestNotJSON(t *testing.T) {
	cases := []struct {
		pattern string
		want    bool
	}{
		{`{"data": {"a": ["1"]}}`, false},
		{`{"data": {"a": [{"exists": false}]}}`, false}, // looks into data
		{`{"data": [{"exists": false}]}`, false},
		{`{"partitionKey": ["pk"]}`, true},
		{`{"$or": [{"data": {"a": ["1"]}}, {"partitionKey": ["pk"]}]}`, true},
		{`{"partitionKey": ["pk"], "data": {"a": [{"exists": false}]}}`, false},
	}
	ev := map[string]any{"partitionKey": "pk", "data": NotJSON}
	for _, c := range cases {
		p, err := Compile(c.pattern)
		if err != nil {
			t.Fatalf("Compile(%s): %v", c.pattern, err)
		}
		if got := p.Match(ev); got != c.want {
			t.Errorf("%s on a record whose data is not JSON = %v, want %v", c.pattern, got, c.want)
		}
	}
	if p, _ := Compile(`{"a": [{"exists": false}]}`); p.Match(NotJSON) {
		t.Error("a pattern matched an event that is not JSON")
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct{ pattern, wantErr string }{
		{`not json`, "not valid JSON"},
		{`{"a": ["x"]} extra`, "not valid JSON"},
		{`["a"]`, "must be a JSON object"},
		{`{}`, "empty objects"},
		{`{"a": {}}`, "a: empty objects"},
		{`{"a": "x"}`, `a: must be an object or an array`},
		{`{"a": []}`, "a: empty arrays"},
		{`{"a": [["x"]]}`, "a[0]: nested arrays"},
		{`{"a": [{"prefix": "x", "suffix": "y"}]}`, "exactly one key"},
		{`{"a": [{"prefix": 5}]}`, "prefix takes a string"},
		{`{"a": [{"suffix": null}]}`, "suffix takes a string"},
		{`{"a": [{"equals-ignore-case": 1}]}`, "equals-ignore-case takes a string"},
		{`{"a": [{"exists": "yes"}]}`, "exists takes true or false"},
		{`{"a": [{"wildcard": "a*"}]}`, "not supported by Lambda"},
		{`{"a": [{"cidr": "10.0.0.0/8"}]}`, "not supported by Lambda"},
		{`{"a": [{"regex": "x"}]}`, `unknown operator "regex"`},
		{`{"a": [{"anything-but": []}]}`, "list is empty"},
		{`{"a": [{"anything-but": ["x", 1]}]}`, "not both"},
		{`{"a": [{"anything-but": [null]}]}`, "only strings or only numbers"},
		{`{"a": [{"anything-but": true}]}`, "anything-but takes"},
		{`{"a": [{"anything-but": {"prefix": ""}}]}`, "non-empty string"},
		{`{"a": [{"anything-but": {"wildcard": "x"}}]}`, "unsupported operator"},
		{`{"a": [{"anything-but": {"equals-ignore-case": [1]}}]}`, "strings only"},
		{`{"a": [{"numeric": [">", "5"]}]}`, "must be a number"},
		{`{"a": [{"numeric": ["!=", 5]}]}`, "unknown operator"},
		{`{"a": [{"numeric": [">", 5, ">", 6]}]}`, "second bound must be < or <="},
		{`{"a": [{"numeric": ["<", 5, ">", 1]}]}`, "lower bound first"},
		{`{"a": [{"numeric": ["=", 5, "<", 6]}]}`, "stands alone"},
		{`{"a": [{"numeric": [">", 5, "<", 5]}]}`, "matches no number"},
		{`{"a": [{"numeric": [5]}]}`, "numeric takes"},
		{`{"$or": [{"a": ["x"]}]}`, "at least 2 objects"},
		{`{"$or": [{"a": ["x"]}, "b"]}`, "$or[1]: must be an object"},
		{`{"$or": [{"prefix": ["x"]}, {"a": ["y"]}]}`, "is an operator, not a field name"},
		{`{"data": {"x": [{"numeric": [">", 1, "<="]}]}}`, "data.x[0]: numeric takes"},
	}
	for _, c := range cases {
		_, err := Compile(c.pattern)
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("Compile(%s) = %v, want an error containing %q", c.pattern, err, c.wantErr)
		}
	}
}

func TestCompileKinesis(t *testing.T) {
	for _, ok := range []string{
		`{"data": {"event_type": ["purchase"]}}`,
		`{"partitionKey": [{"prefix": "user-"}]}`,
		`{"$or": [{"data": {"a": ["1"]}}, {"sequenceNumber": ["1"]}]}`,
		`{"approximateArrivalTimestamp": [{"numeric": [">", 0]}]}`,
	} {
		if _, err := CompileKinesis(ok); err != nil {
			t.Errorf("CompileKinesis(%s): %v", ok, err)
		}
	}
	for _, bad := range []string{
		`{"Data": {"event_type": ["purchase"]}}`,
		`{"event_type": ["purchase"]}`,
		`{"$or": [{"data": {"a": ["1"]}}, {"kinesis": {"partitionKey": ["1"]}}]}`,
	} {
		if _, err := CompileKinesis(bad); err == nil || !strings.Contains(err.Error(), "unknown field") {
			t.Errorf("CompileKinesis(%s) = %v, want an unknown field error", bad, err)
		}
	}
}

func TestTopLevelKeys(t *testing.T) {
	p, err := Compile(`{"data": {"x": ["1"]}, "$or": [{"partitionKey": ["a"]}, {"data": {"y": ["2"]}}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.TopLevelKeys(), ","); got != "data,partitionKey" {
		t.Errorf("TopLevelKeys = %s, want data,partitionKey", got)
	}
}
