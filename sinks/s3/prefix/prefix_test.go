package prefix

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

var at = time.Date(2018, time.August, 27, 10, 30, 5, 123456789, time.UTC)

func queries(names ...string) func(string) bool {
	return func(k string) bool {
		for _, n := range names {
			if n == k {
				return true
			}
		}
		return false
	}
}

// Firehose's documented examples, and the seed recipe's prefix, evaluate as Firehose does.
func TestEvaluate(t *testing.T) {
	data := Rules{PartitionKeys: true, Queries: queries("event_type", "customer_id")}
	for _, c := range []struct {
		prefix string
		rules  Rules
		v      Values
		want   string
	}{
		{"myPrefix/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/", Rules{}, Values{Time: at},
			"myPrefix/year=2018/month=08/day=27/hour=10/"},
		{"myErrorPrefix/!{timestamp:'year='yyyy'/month='MM'/day='dd'/hour='HH}/!{firehose:error-output-type}", Rules{Error: true},
			Values{Time: at, ErrorOutputType: "processing-failed"}, "myErrorPrefix/year=2018/month=08/day=27/hour=10/processing-failed"},
		{"myFirehoseFailures/!{firehose:error-output-type}/!{timestamp:yyyy}/anyMonth/!{timestamp:dd}", Rules{Error: true},
			Values{Time: at, ErrorOutputType: "format-conversion-failed"}, "myFirehoseFailures/format-conversion-failed/2018/anyMonth/27"},
		{"transformed-data/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/", Rules{}, Values{Time: at},
			"transformed-data/year=2018/month=08/day=27/hour=10/"},
		{"prefix/!{timestamp:yyyy}-!{timestamp:MM}-!{timestamp:dd}/!{partitionKeyFromQuery:customer_id}/", data,
			Values{Time: at, Keys: []string{"customer-1234"}}, "prefix/2018-08-27/customer-1234/"},
		{"t=!{partitionKeyFromQuery:event_type}/c=!{partitionKeyFromLambda:customer_id}/again=!{partitionKeyFromQuery:event_type}/", data,
			Values{Time: at, Keys: []string{"purchase", "c-7"}}, "t=purchase/c=c-7/again=purchase/"},
		{"!{timestamp:yy/M/d/H/m/s}", Rules{}, Values{Time: time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)}, "24/3/4/5/6/7"},
		{"!{timestamp:yyyy-MM-dd'T'HH:mm:ss.SSS}", Rules{}, Values{Time: at}, "2018-08-27T10:30:05.123"},
		{"!{timestamp:'it''s' yyyy ''}", Rules{}, Values{Time: at}, "it's 2018 '"},
		{"!{timestamp:uuuu}", Rules{}, Values{Time: at.In(time.FixedZone("east", 14*3600))}, "2018"},
		{"no expressions/", Rules{}, Values{Time: at}, "no expressions/"},
		{"", Rules{}, Values{Time: at}, ""},
		{"a}b{c/", Rules{}, Values{Time: at}, "a}b{c/"},
	} {
		tmpl, err := Parse(c.prefix, c.rules)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.prefix, err)
			continue
		}
		if got := tmpl.Eval(c.v); got != c.want {
			t.Errorf("%q evaluates to %q, want %q", c.prefix, got, c.want)
		}
		if n := tmpl.Len(c.v.Keys, c.v.ErrorOutputType); n < len(c.want) {
			t.Errorf("%q: Len %d is less than the evaluated length %d", c.prefix, n, len(c.want))
		}
		if tmpl.String() != c.prefix {
			t.Errorf("String() = %q, want %q", tmpl.String(), c.prefix)
		}
	}
}

func TestLenIsExactForTwoDigitFields(t *testing.T) {
	tmpl := MustParse("x/!{timestamp:yyyy/MM/dd/HH/mm/ss}/!{firehose:random-string}/!{partitionKeyFromLambda:k}", Rules{PartitionKeys: true})
	v := Values{Time: at, Keys: []string{"value"}}
	if got, want := tmpl.Len(v.Keys, ""), len(tmpl.Eval(v)); got != want {
		t.Fatalf("Len = %d, evaluated length %d", got, want)
	}
}

func TestRandomString(t *testing.T) {
	tmpl := MustParse("!{firehose:random-string}/!{firehose:random-string}", Rules{})
	got := tmpl.Eval(Values{})
	m := regexp.MustCompile(`^([0-9a-z]{11})/([0-9a-z]{11})$`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("evaluated to %q, want two 11-character random strings", got)
	}
	if m[1] == m[2] {
		t.Errorf("both instances evaluated to %q; each use is a new random string", m[1])
	}
}

func TestDefaultTimeAppended(t *testing.T) {
	tmpl := MustParse("logs/", Rules{}).WithTime(DefaultTimePattern)
	if got := tmpl.Eval(Values{Time: at}); got != "logs/2018/08/27/10/" {
		t.Fatalf("got %q", got)
	}
	if !tmpl.HasTimestamp() || !tmpl.HasExpressions() {
		t.Fatal("the appended time is an expression")
	}
	errT := MustParse("errors/", Rules{Error: true}).WithErrorOutputType().WithLiteral("/").WithTime(DefaultTimePattern)
	if got := errT.Eval(Values{Time: at, ErrorOutputType: "partitioning-failed"}); got != "errors/partitioning-failed/2018/08/27/10/" {
		t.Fatalf("error prefix got %q", got)
	}
}

func TestKeys(t *testing.T) {
	tmpl := MustParse("!{partitionKeyFromLambda:b}/!{partitionKeyFromQuery:a}/!{partitionKeyFromLambda:b}/", Rules{PartitionKeys: true, Queries: queries("a")})
	keys := tmpl.Keys()
	if len(keys) != 2 || keys[0] != (Key{FromLambda: true, Name: "b"}) || keys[1] != (Key{Name: "a"}) {
		t.Fatalf("Keys() = %v", keys)
	}
	if keys[0].String() != "!{partitionKeyFromLambda:b}" || keys[1].String() != "!{partitionKeyFromQuery:a}" {
		t.Fatalf("String() = %s, %s", keys[0], keys[1])
	}
}

func TestParseRejects(t *testing.T) {
	data := Rules{PartitionKeys: true, Queries: queries("a")}
	for _, c := range []struct {
		prefix string
		rules  Rules
		want   string
	}{
		{"x/!{timestamp:yyyy", Rules{}, "no closing }"},
		{"!{timestamp}", Rules{}, "want !{namespace:value}"},
		{"!{timestamp:}", Rules{}, "want !{namespace:value}"},
		{"!{time:yyyy}", Rules{}, `unknown namespace "time"`},
		{"!{firehose:uuid}", Rules{}, "the firehose namespace has"},
		{"!{firehose:error-output-type}", Rules{}, "only an error output prefix"},
		{"!{timestamp:yyyy-MMM}", Rules{}, "MMM is not supported"},
		{"!{timestamp:EEE}", Rules{}, "EEE is not supported"},
		{"!{timestamp:yyyy[MM]}", Rules{}, "reserved"},
		{"!{timestamp:'open}", Rules{}, "unterminated quote"},
		{"!{partitionKeyFromQuery:a}", Rules{}, "need dynamic_partitioning.enabled"},
		{"!{partitionKeyFromQuery:b}", data, `no query named "b"`},
		{"!{partitionKeyFromLambda:a b}", data, "a key name is"},
		{"e/!{timestamp:yyyy}/", Rules{Error: true}, "must include !{firehose:error-output-type}"},
		{"e/!{firehose:error-output-type}/!{partitionKeyFromLambda:a}", Rules{Error: true, PartitionKeys: true}, "cannot use partition keys"},
	} {
		_, err := Parse(c.prefix, c.rules)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", c.prefix, err, c.want)
		}
	}
}
