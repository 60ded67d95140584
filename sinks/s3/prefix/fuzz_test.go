package prefix

import (
	"strings"
	"testing"
	"time"
)

// FuzzParse parses arbitrary prefixes under each set of rules. A prefix that parses must keep
// its source, parse again to the same template, and evaluate without panicking to at most the
// length Len promises, with every literal part present; one that does not parse must say why.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "logs/", "!{timestamp:yyyy/MM/dd/HH/}", "data/!{timestamp:yyyy-MM-dd'T'HH:mm:ss.SSS}/",
		"x/!{partitionKeyFromQuery:customer}/!{partitionKeyFromLambda:region}/",
		"err/!{firehose:error-output-type}/!{timestamp:yyyy}/", "!{firehose:random-string}-!{timestamp:u''d}",
		"!{timestamp:yy/M/d/H/m/s/SSSSSSSSS}", "!{", "!{timestamp:}", "!{unknown:x}", "a}b{c!", "!{timestamp:'unterminated}",
	} {
		f.Add(s, uint8(0), "k1", "k2", int64(1700000000123))
	}
	f.Fuzz(func(t *testing.T, s string, rules uint8, k1, k2 string, unixMilli int64) {
		r := Rules{Error: rules&1 != 0, PartitionKeys: rules&2 != 0}
		if rules&4 != 0 {
			r.Queries = func(key string) bool { return key != "undeclared" }
		}
		tmpl, err := Parse(s, r)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("Parse(%q): empty error", s)
			}
			return
		}
		if tmpl.String() != s {
			t.Fatalf("String() = %q, want the source %q", tmpl.String(), s)
		}
		again, err := Parse(tmpl.String(), r)
		if err != nil {
			t.Fatalf("Parse(%q) succeeded, then failed on its own String(): %v", s, err)
		}
		if len(again.Keys()) != len(tmpl.Keys()) || again.HasTimestamp() != tmpl.HasTimestamp() || again.HasExpressions() != tmpl.HasExpressions() {
			t.Fatalf("Parse(%q) twice: different templates", s)
		}
		v := Values{Time: time.UnixMilli(unixMilli), Keys: []string{k1, k2}, ErrorOutputType: "processing-failed"}
		got := tmpl.Eval(v)
		if n := tmpl.Len(v.Keys, v.ErrorOutputType); len(got) > n {
			t.Fatalf("Eval(%q) = %q: %d bytes, more than Len's %d", s, got, len(got), n)
		}
		if !strings.Contains(s, "!{") && got != s {
			t.Fatalf("Eval of the literal prefix %q = %q", s, got)
		}
	})
}
