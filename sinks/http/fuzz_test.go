package httpsink

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzCheckResponse checks arbitrary answers to a request (whose id, as every request's, is a
// UUID). An answer accepted must be a JSON object whose requestId is the request's; the answer
// the protocol prescribes is always accepted.
func FuzzCheckResponse(f *testing.F) {
	const id = "5e7d3a5b-1f0e-4c2d-9a8b-7c6d5e4f3a2b"
	for _, b := range []string{
		`{"requestId":"` + id + `","timestamp":1700000000123}`,
		`{"requestId":"` + id + `"}`,
		`{"requestId":"other","timestamp":1}`,
		`{"requestId":"` + id + `","timestamp":1.5}`,
		`{"requestId":null}`, `{}`, `[]`, `null`, ``, `{"requestId":"` + id + `","errorMessage":"x"} trailing`,
	} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		err := checkResponse(body, id)
		if err == nil {
			var r struct {
				RequestID *string `json:"requestId"`
			}
			if jerr := json.Unmarshal(firstValue(body), &r); jerr != nil || r.RequestID == nil || *r.RequestID != id {
				t.Fatalf("checkResponse accepted %q for request %q", body, id)
			}
		} else if err.Error() == "" {
			t.Fatal("empty error")
		}
		good, _ := json.Marshal(map[string]any{"requestId": id, "timestamp": 1700000000123})
		if err := checkResponse(good, id); err != nil {
			t.Fatalf("the protocol's answer %s refused: %v", good, err)
		}
	})
}

// firstValue returns the first JSON value of b (checkResponse reads only that one).
func firstValue(b []byte) []byte {
	var raw json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil {
		return b
	}
	return raw
}
