package produce

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shardhose/shardhose/internal/clock"
)

func generate(t *testing.T, seed int64, field string, n int) []Entry {
	t.Helper()
	fc := clock.NewFake(t0)
	s := NewGeneratedSource(seed)
	s.Clock = fc
	s.PartitionKeyField = field
	out := make([]Entry, n)
	for i := range out {
		e, err := s.Next()
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out[i] = e
		fc.Advance(700 * time.Millisecond)
	}
	return out
}

func TestGeneratedSourceDeterministic(t *testing.T) {
	a, b, c := generate(t, 7, "", 1000), generate(t, 7, "", 1000), generate(t, 8, "", 1000)
	same := 0
	for i := range a {
		if !bytes.Equal(a[i].Data, b[i].Data) || a[i].PartitionKey != b[i].PartitionKey {
			t.Fatalf("seed 7, event %d differs between runs:\n%s %s\n%s %s", i, a[i].Data, a[i].PartitionKey, b[i].Data, b[i].PartitionKey)
		}
		if bytes.Equal(a[i].Data, c[i].Data) {
			same++
		}
	}
	if same > 0 {
		t.Errorf("seeds 7 and 8 made %d identical events", same)
	}
}

func TestGeneratedSourceEvents(t *testing.T) {
	const n = 5000
	entries := generate(t, 42, "user_id", n)
	var (
		uuid     = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
		user     = regexp.MustCompile(`^user[0-9]{3}$`)
		product  = regexp.MustCompile(`^prod[0-9]{3}$`)
		amount   = regexp.MustCompile(`^[0-9]+\.[0-9]{2}$`)
		types    = map[string]int{}
		ids      = map[string]bool{}
		fieldSeq = []string{"event_id", "user_id", "event_type", "amount", "product_id", "timestamp"}
	)
	for i, e := range entries {
		if !json.Valid(e.Data) {
			t.Fatalf("event %d is not valid JSON: %s", i, e.Data)
		}
		var ev map[string]json.RawMessage
		if err := json.Unmarshal(e.Data, &ev); err != nil {
			t.Fatalf("event %d is not a JSON object: %s", i, e.Data)
		}
		str := func(k string) string {
			var s string
			if err := json.Unmarshal(ev[k], &s); err != nil {
				t.Fatalf("event %d: %s is not a string: %s", i, k, e.Data)
			}
			return s
		}
		// The recipe's fields, in the recipe's order.
		pos := -1
		for _, f := range fieldSeq {
			if p := bytes.Index(e.Data, []byte(`"`+f+`":`)); p >= 0 {
				if p < pos {
					t.Fatalf("event %d: field %s out of order: %s", i, f, e.Data)
				}
				pos = p
			}
		}
		id := str("event_id")
		if !uuid.MatchString(id) || ids[id] {
			t.Errorf("event %d: event_id %q is not a fresh UUID", i, id)
		}
		ids[id] = true
		if u := str("user_id"); !user.MatchString(u) || e.PartitionKey != u {
			t.Errorf("event %d: user_id %q, partition key %q", i, u, e.PartitionKey)
		}
		if p := str("product_id"); !product.MatchString(p) {
			t.Errorf("event %d: product_id %q", i, p)
		}
		if ts, want := str("timestamp"), t0.Add(time.Duration(i)*700*time.Millisecond).Format(time.RFC3339); ts != want {
			t.Errorf("event %d: timestamp %q, want %q (the clock's time)", i, ts, want)
		}
		typ := str("event_type")
		types[typ]++
		a, hasAmount := ev["amount"]
		if hasAmount != (typ == "purchase") {
			t.Errorf("event %d: %s event with amount %v: only purchases carry one", i, typ, hasAmount)
		}
		if hasAmount {
			v, err := strconv.ParseFloat(string(a), 64)
			if !amount.Match(a) || err != nil || v < 1 || v > 500 {
				t.Errorf("event %d: amount %s, want 1.00 to 500.00 with two decimals", i, a)
			}
		}
		if len(ev) != len(fieldSeq)-map[bool]int{true: 0, false: 1}[hasAmount] {
			t.Errorf("event %d has unexpected fields: %s", i, e.Data)
		}
	}
	for typ, pct := range map[string]float64{"view": 60, "add_to_cart": 20, "purchase": 12, "remove_from_cart": 8} {
		if got := 100 * float64(types[typ]) / n; got < pct-3 || got > pct+3 {
			t.Errorf("%s: %.1f%% of events, want about %.0f%%", typ, got, pct)
		}
	}
	if len(types) != 4 {
		t.Errorf("event types %v", types)
	}
	t.Logf("first event: %s", entries[0].Data)
}

func TestGeneratedSourcePartitionKeys(t *testing.T) {
	for _, e := range generate(t, 1, "", 100) {
		if !regexp.MustCompile(`^[0-9]{10}$`).MatchString(e.PartitionKey) {
			t.Fatalf("random key %q is not 10 digits", e.PartitionKey)
		}
	}
	for _, field := range []string{"event_id", "event_type", "product_id", "timestamp"} {
		e := generate(t, 1, field, 1)[0]
		if !bytes.Contains(e.Data, []byte(`"`+field+`":"`+e.PartitionKey+`"`)) {
			t.Errorf("field %s: key %q not the field's value in %s", field, e.PartitionKey, e.Data)
		}
	}
	s := NewGeneratedSource(1)
	s.PartitionKeyField = "amount"
	if _, err := s.Next(); err == nil || !strings.Contains(err.Error(), `"amount"`) {
		t.Errorf("err = %v, want an error naming the unusable field", err)
	}
}
