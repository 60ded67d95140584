package opensearch

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"unicode/utf8"
)

// FuzzBulkResponse decodes arbitrary _bulk answers (as the client does, with json.Unmarshal) for
// batches of 1 to 4 documents and records the outcomes. Every document must end indexed, or with
// an error code and a message of bounded length; only a 2xx item (or a 409 for a position id)
// indexes a document; a permanent failure is only a 400 or 413 item.
func FuzzBulkResponse(f *testing.F) {
	for _, s := range []string{
		`{"took":3,"errors":false,"items":[{"index":{"_index":"logs","_id":"1","status":201,"result":"created"}}]}`,
		`{"took":3,"errors":true,"items":[{"index":{"_index":"logs","_id":"1","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [n]"}}},{"create":{"_id":"2","status":409,"error":{"type":"version_conflict_engine_exception"}}}]}`,
		`{"errors":true,"items":[{"index":{"status":429,"error":{"type":"es_rejected_execution_exception"}}},{"index":{"status":503}},{"index":{}}]}`,
		`{"errors":false,"items":[]}`, `{"items":[{}]}`, `{"items":[{"a":{"status":200},"b":{"status":500}}]}`,
		`{"items":[{"index":{"status":500,"error":"` + string(make([]byte, 5000)) + `"}}]}`, `[]`, `null`,
	} {
		f.Add([]byte(s), uint8(1), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, n uint8, positionIDs bool) {
		var resp bulkResponse
		if err := json.Unmarshal(body, &resp); err != nil {
			return // the client reports it as a malformed response before any item is read
		}
		docs := make([]*doc, 1+int(n)%4)
		for i := range docs {
			docs[i] = &doc{positionID: positionIDs}
		}
		applyItems(&resp, docs)
		for i, d := range docs {
			if d.state == stateIndexed {
				if len(resp.Items) != len(docs) {
					t.Fatalf("doc %d indexed from an answer of %d items for %d documents", i, len(resp.Items), len(docs))
				}
				st := onlyStatus(resp.Items[i])
				if !(st >= 200 && st < 300) && !(st == 409 && positionIDs) {
					t.Fatalf("doc %d indexed by an item of status %d", i, st)
				}
				continue
			}
			if d.code == "" || d.message == "" {
				t.Fatalf("doc %d neither indexed nor failed with a code and message: %+v", i, *d)
			}
			if len(d.message) > maxMessage+len("…") || !utf8.ValidString(d.message) && utf8.Valid(body) {
				t.Fatalf("doc %d: message of %d bytes (valid UTF-8: %v)", i, len(d.message), utf8.ValidString(d.message))
			}
			if d.state == stateFailed && d.code != strconv.Itoa(http.StatusBadRequest) && d.code != strconv.Itoa(http.StatusRequestEntityTooLarge) {
				t.Fatalf("doc %d failed for good with code %s", i, d.code)
			}
		}
	})
}

// onlyStatus returns the status of an item's only action; -1 when it has none or several.
func onlyStatus(item map[string]bulkItem) int {
	if len(item) != 1 {
		return -1
	}
	for _, v := range item {
		return v.Status
	}
	return -1
}
