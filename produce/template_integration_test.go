package produce

import (
	"context"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/shardhose/shardhose/internal/clock"
	"github.com/shardhose/shardhose/internal/testenv"
	"github.com/shardhose/shardhose/produce/kdg"
)

// TestIntegrationProduceTemplates sends records of two weighted templates with a key template
// to kinesis-local and reads them back: the stream holds exactly what was rendered, under the
// rendered keys.
func TestIntegrationProduceTemplates(t *testing.T) {
	c := kinesisLocal(t)
	stream := testenv.UniqueName(t, "tmpl")
	testenv.CreateStream(t, c, stream, 2)

	var tmpls []*kdg.Template
	for _, f := range []string{"recipe-event.tmpl", "recipe-purchase.tmpl"} {
		tp, err := kdg.ParseFile("../configs/templates/" + f)
		if err != nil {
			t.Fatal(err)
		}
		tmpls = append(tmpls, tp)
	}
	key, err := kdg.Parse("--partition-key", `user-{{random.number({"min":1,"max":20})}}`)
	if err != nil {
		t.Fatal(err)
	}
	src, err := NewTemplateSource(tmpls, []int{88, 12}, key, kdg.NewFaker(11, clock.Real(), nil))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingSource{src: src}
	const n = 700 // two PutRecords calls
	stats, err := Run(t.Context(), Options{Stream: stream, Client: c, Source: rec, Count: n})
	if err != nil || stats.Sent != n || stats.Calls < 2 {
		t.Fatalf("Run = %+v, %v; want %d records in at least 2 calls", stats, err, n)
	}
	readCtx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	got := readAll(readCtx, t, c, stream, n)
	sent := map[string]string{} // data -> key
	for _, e := range rec.sent {
		sent[string(e.Data)] = e.PartitionKey
	}
	keyRE := regexp.MustCompile(`^user-([1-9]|1\d|20)$`)
	for _, r := range got {
		k, ok := sent[r.data]
		if !ok || k != r.key || !keyRE.MatchString(r.key) {
			t.Fatalf("stream holds %q under key %q; sent under %q (found: %v)", r.data, r.key, k, ok)
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(r.data), &ev); err != nil || ev["event_id"] == nil {
			t.Fatalf("record %q is not a recipe event", r.data)
		}
	}
	if len(got) != n {
		t.Errorf("read %d records, want %d", len(got), n)
	}
}
