package produce

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/produce/kdg"
)

// templateAt is the fake clock's time when the example templates are rendered.
var templateAt = time.Date(2026, 3, 6, 9, 5, 3, 42_000_000, time.UTC)

func exampleSource(t *testing.T, seed uint64, weights []int, files ...string) *TemplateSource {
	t.Helper()
	var tmpls []*kdg.Template
	for _, f := range files {
		tp, err := kdg.ParseFile("../configs/templates/" + f)
		if err != nil {
			t.Fatal(err)
		}
		tmpls = append(tmpls, tp)
	}
	src, err := NewTemplateSource(tmpls, weights, nil, kdg.NewFaker(seed, clock.NewFake(templateAt), time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// fields decodes a record as a JSON object with its numbers kept as written, and checks that it
// has exactly the keys want, in that order.
func fields(t *testing.T, data []byte, want ...string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("record is not a JSON object: %v\n%s", err, data)
	}
	if keys := topKeys(t, data); strings.Join(keys, ",") != strings.Join(want, ",") {
		t.Fatalf("record has keys %v, want %v:\n%s", keys, want, data)
	}
	return m
}

// topKeys returns the keys of the JSON object data, in order.
func topKeys(t *testing.T, data []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	var keys []string
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("record does not start with an object: %s", data)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func str(t *testing.T, m map[string]any, k, re string) string {
	t.Helper()
	s, ok := m[k].(string)
	if !ok || !regexp.MustCompile(re).MatchString(s) {
		t.Fatalf("%s = %#v, want a string matching %s", k, m[k], re)
	}
	return s
}

func num(t *testing.T, m map[string]any, k string, lo, hi, step float64) float64 {
	t.Helper()
	n, ok := m[k].(json.Number)
	f, err := n.Float64()
	if !ok || err != nil || f < lo || f > hi {
		t.Fatalf("%s = %#v, want a number from %v to %v", k, m[k], lo, hi)
	}
	if q := f / step; math.Abs(q-math.Round(q)) > 1e-6 {
		t.Fatalf("%s = %v, want a multiple of %v", k, f, step)
	}
	return f
}

func oneOf(t *testing.T, m map[string]any, k string, allowed ...string) string {
	t.Helper()
	s, _ := m[k].(string)
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	t.Fatalf("%s = %#v, want one of %v", k, m[k], allowed)
	return ""
}

const uuidRE = `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`

func TestRecipeTemplatesMatchTheRecipeEvents(t *testing.T) {
	// The recipe's own sample events have these fields in this order; purchases carry an amount.
	src := exampleSource(t, 1, []int{88, 12}, "recipe-event.tmpl", "recipe-purchase.tmpl")
	types := map[string]int{}
	const n = 2000
	for range n {
		e, err := src.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^\d{10}$`).MatchString(e.PartitionKey) {
			t.Fatalf("partition key %q, want 10 digits", e.PartitionKey)
		}
		var m map[string]any
		if bytes.Contains(e.Data, []byte(`"purchase"`)) {
			m = fields(t, e.Data, "event_id", "user_id", "event_type", "amount", "product_id", "timestamp")
			num(t, m, "amount", 1, 500, 0.01)
		} else {
			m = fields(t, e.Data, "event_id", "user_id", "event_type", "product_id", "timestamp")
		}
		str(t, m, "event_id", uuidRE)
		str(t, m, "user_id", `^user\d{3}$`)
		str(t, m, "product_id", `^prod\d{3}$`)
		types[oneOf(t, m, "event_type", "view", "add_to_cart", "remove_from_cart", "purchase")]++
		if ts := str(t, m, "timestamp", `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`); ts != "2026-03-06T09:05:03Z" {
			t.Fatalf("timestamp %s, want the clock's time", ts)
		}
	}
	// 88% from the event template (60:20:8 within it), 12% purchases.
	for typ, want := range map[string]float64{"view": 0.60, "add_to_cart": 0.20, "remove_from_cart": 0.08, "purchase": 0.12} {
		if got := float64(types[typ]) / n; math.Abs(got-want) > 0.035 {
			t.Errorf("%s is %.3f of the events, want about %.2f", typ, got, want)
		}
	}
	// The same fields as the recipe's sample file.
	sample, err := LoadFileSource("../configs/samples/recipe-events.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	e, _ := sample.Next()
	fields(t, e.Data, "event_id", "user_id", "event_type", "amount", "product_id", "timestamp")
}

func TestIoTTemplate(t *testing.T) {
	src := exampleSource(t, 2, nil, "iot-sensor.tmpl")
	for range 500 {
		e, err := src.Next()
		if err != nil {
			t.Fatal(err)
		}
		m := fields(t, e.Data, "sensor_id", "device_type", "temperature", "humidity", "battery", "status", "location", "reading_time")
		str(t, m, "sensor_id", `^sensor-([1-9]|[1-4]\d|50)$`)
		oneOf(t, m, "device_type", "thermostat", "hygrometer", "barometer")
		num(t, m, "temperature", 15, 35, 0.1)
		num(t, m, "humidity", 20, 90, 1)
		num(t, m, "battery", 0, 100, 1)
		oneOf(t, m, "status", "OK", "WARN", "FAIL")
		loc, ok := m["location"].(map[string]any)
		if !ok {
			t.Fatalf("location = %#v, want an object", m["location"])
		}
		num(t, loc, "lat", -90, 90, 0.0001)
		num(t, loc, "lon", -180, 180, 0.0001)
		if rt := num(t, m, "reading_time", 0, math.MaxInt64, 1); int64(rt) != templateAt.UnixMilli() {
			t.Fatalf("reading_time %v, want %d", rt, templateAt.UnixMilli())
		}
	}
}

func TestClickstreamTemplate(t *testing.T) {
	src := exampleSource(t, 3, nil, "clickstream.tmpl")
	for range 500 {
		e, err := src.Next()
		if err != nil {
			t.Fatal(err)
		}
		m := fields(t, e.Data, "session_id", "user", "ip", "user_agent", "page", "action", "referrer", "ts")
		str(t, m, "session_id", uuidRE)
		str(t, m, "user", `^\S+$`)
		str(t, m, "ip", `^\d{1,3}(\.\d{1,3}){3}$`)
		str(t, m, "user_agent", `^[A-Za-z]+/\d`)
		oneOf(t, m, "page", "/", "/products", "/cart", "/checkout", "/search", "/account")
		oneOf(t, m, "action", "pageview", "click", "scroll")
		str(t, m, "referrer", `^https?://`)
		if ts := str(t, m, "ts", `.`); ts != "2026-03-06T09:05:03.042Z" {
			t.Fatalf("ts %s", ts)
		}
	}
}

func TestAppLogTemplate(t *testing.T) {
	src := exampleSource(t, 4, nil, "app-log.tmpl")
	for range 500 {
		e, err := src.Next()
		if err != nil {
			t.Fatal(err)
		}
		m := fields(t, e.Data, "timestamp", "level", "service", "host", "request_id", "latency_ms", "status", "user", "message")
		if ts := str(t, m, "timestamp", `.`); ts != "2026-03-06 09:05:03" {
			t.Fatalf("timestamp %s", ts)
		}
		oneOf(t, m, "level", "INFO", "DEBUG", "WARN", "ERROR")
		oneOf(t, m, "service", "checkout", "catalog", "payments", "auth")
		str(t, m, "host", `^app-([1-9]|1\d|20)$`)
		str(t, m, "request_id", uuidRE)
		num(t, m, "latency_ms", 1, 2500, 1)
		switch s := num(t, m, "status", 200, 503, 1); s {
		case 200, 201, 204, 400, 404, 500, 503:
		default:
			t.Fatalf("status %v", s)
		}
		str(t, m, "user", `^[^@\s]+@[^@\s]+$`)
		str(t, m, "message", `.`)
	}
}

func TestApacheAccessTemplateIsNotJSONAndExpectJSONWarns(t *testing.T) {
	src := exampleSource(t, 5, nil, "apache-access.tmpl")
	var logged bytes.Buffer
	src.ExpectJSON = true
	src.Logger = slog.New(slog.NewTextHandler(&logged, nil))
	line := regexp.MustCompile(`^\d{1,3}(\.\d{1,3}){3} - \S+ \[06/Mar/2026:09:05:03 \+0000\] "(GET|POST|PUT|DELETE) /\S* HTTP/1\.1" (200|304|404|500) \d+$`)
	for range 100 {
		e, err := src.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !line.Match(e.Data) {
			t.Fatalf("record %q is not a combined log line", e.Data)
		}
	}
	if got := src.NonJSON()["../configs/templates/apache-access.tmpl"]; got != 100 {
		t.Errorf("NonJSON counted %d, want 100", got)
	}
	if n := strings.Count(logged.String(), "not JSON"); n != 1 {
		t.Errorf("warned %d times, want once:\n%s", n, logged.String())
	}
}

func TestTemplateSourceWeightsSeedAndKeys(t *testing.T) {
	a, err := kdg.Parse("a", "A")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := kdg.Parse("b", "B")
	key, _ := kdg.Parse("key", "{{random.arrayElement([\"k1\",\"k2\"])}}")
	mk := func(seed uint64, weights []int, key *kdg.Template) *TemplateSource {
		s, err := NewTemplateSource([]*kdg.Template{a, b}, weights, key, kdg.NewFaker(seed, clock.NewFake(templateAt), nil))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := mk(1, []int{3, 1}, key)
	counts := map[string]int{}
	for range 4000 {
		e, _ := s.Next()
		counts[string(e.Data)]++
		if e.PartitionKey != "k1" && e.PartitionKey != "k2" {
			t.Fatalf("key %q from the key template", e.PartitionKey)
		}
	}
	if r := float64(counts["A"]) / 4000; math.Abs(r-0.75) > 0.03 {
		t.Errorf("weights 3:1 picked A %.3f of the time", r)
	}
	// Weight 0 never picks.
	s = mk(1, []int{0, 1}, nil)
	for range 100 {
		if e, _ := s.Next(); string(e.Data) != "B" {
			t.Fatal("a template of weight 0 was picked")
		}
	}
	// The same seed gives the same records and keys.
	x, y := mk(7, nil, nil), mk(7, nil, nil)
	for range 100 {
		ex, _ := x.Next()
		ey, _ := y.Next()
		if string(ex.Data) != string(ey.Data) || ex.PartitionKey != ey.PartitionKey {
			t.Fatal("seed 7 gave different records")
		}
	}
	for _, c := range []struct {
		weights []int
		msg     string
	}{
		{[]int{1}, "1 weights for 2 templates"},
		{[]int{1, -1}, "weight 2 of template b is -1"},
		{[]int{0, 0}, "all are 0"},
	} {
		if _, err := NewTemplateSource([]*kdg.Template{a, b}, c.weights, nil, kdg.NewFaker(1, nil, nil)); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("weights %v: %v, want %q", c.weights, err, c.msg)
		}
	}
	empty, _ := kdg.Parse("empty-key", "")
	s = mk(1, nil, empty)
	if _, err := s.Next(); err == nil || !strings.Contains(err.Error(), "partition key template empty-key rendered an empty key") {
		t.Errorf("empty key: %v", err)
	}
}
