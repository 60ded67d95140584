package opensearch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"unicode/utf8"

	opensearchgo "github.com/opensearch-project/opensearch-go/v4"
	"github.com/opensearch-project/opensearch-go/v4/opensearchapi"
)

// bulkResponse is the body of a _bulk answer: one item per action, in request order.
type bulkResponse struct {
	Took   int                   `json:"took"`
	Errors bool                  `json:"errors"`
	Items  []map[string]bulkItem `json:"items"`
}

type bulkItem struct {
	Index  string          `json:"_index"`
	ID     string          `json:"_id"`
	Status int             `json:"status"`
	Result string          `json:"result"`
	Error  json.RawMessage `json:"error"`
}

// retriable decides whether a failure with this HTTP status is worth retrying, for one document
// of a bulk response and for a whole request alike. 400 (the document or the request is
// malformed: mapper_parsing_exception, illegal_argument_exception, a _type the cluster does not
// take) and 413 (too large) do not change on retry; everything else (429 and 5xx, but also 401
// and 403 while credentials propagate, 404 until an index template or alias exists, 409 version
// conflicts between writers of the same id) may. A failure without a status (connection refused
// or reset, timeout) is retriable.
func retriable(status int) bool {
	return status != http.StatusBadRequest && status != http.StatusRequestEntityTooLarge
}

// maxMessage bounds an error message copied into logs and error records.
const maxMessage = 4096

// bulk sends one _bulk request with body (NDJSON) within request_timeout. It returns the decoded
// response for a 2xx answer; for any other answer the status and the body as text; and a non-nil
// err with status 0 when there was no answer. A 2xx answer whose body does not decode comes
// back as status and err.
func (s *Sink) bulk(ctx context.Context, body []byte) (resp *bulkResponse, status int, text string, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.requestTimeout)
	defer cancel()
	var out bulkResponse
	req := opensearchapi.BulkReq{
		Body:   bytes.NewReader(body),
		Header: http.Header{"Content-Type": []string{"application/x-ndjson"}},
	}
	res, err := opensearchgo.Do(ctx, s.client, http.MethodPost, req, &out)
	if res == nil {
		if err == nil {
			err = errors.New("no response")
		}
		return nil, 0, "", fmt.Errorf("bulk request: %w", err)
	}
	if res.IsError() {
		return nil, res.StatusCode, responseText(res), nil
	}
	if err != nil {
		return nil, res.StatusCode, "", fmt.Errorf("bulk response: %w", err)
	}
	return &out, res.StatusCode, "", nil
}

// responseText returns an error answer's body for a message, shortened.
func responseText(res *opensearchgo.Response) string {
	if res.Body == nil {
		return http.StatusText(res.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, maxMessage+1))
	if err != nil || len(b) == 0 {
		return http.StatusText(res.StatusCode)
	}
	return truncate(string(bytes.TrimSpace(b)))
}

// truncate shortens s to maxMessage bytes at a rune boundary, marking the cut.
func truncate(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// actionLine returns the bulk action line for a document (with its newline).
func (s *Sink) actionLine(index, id string) []byte {
	b := make([]byte, 0, 48+len(index)+len(id)+len(s.typeName))
	b = append(b, `{"index":{"_index":`...)
	b = appendJSONString(b, index)
	if id != "" {
		b = append(b, `,"_id":`...)
		b = appendJSONString(b, id)
	}
	if s.typeName != "" {
		b = append(b, `,"_type":`...)
		b = appendJSONString(b, s.typeName)
	}
	return append(b, "}}\n"...)
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// encode writes the NDJSON body for docs: each action line, then the document on one line.
func encode(docs []*doc) []byte {
	n := 0
	for _, d := range docs {
		n += len(d.action) + len(d.rec.Data) + 1
	}
	buf := bytes.NewBuffer(make([]byte, 0, n))
	for _, d := range docs {
		buf.Write(d.action)
		if bytes.ContainsAny(d.rec.Data, "\r\n") {
			// checkDocument made sure it is valid JSON, so Compact cannot fail.
			_ = json.Compact(buf, d.rec.Data)
		} else {
			buf.Write(d.rec.Data)
		}
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// send makes one bulk request for docs (all pending) and records each document's outcome:
// indexed, failed for now (still pending, with the error), or failed for good. A 413 answer
// splits the documents in halves, each sent on its own. It returns the error of a request that
// got no answer (ctx's error once ctx has ended), for the caller to wrap.
func (run *batchRun) send(ctx context.Context, docs []*doc) error {
	resp, status, text, err := run.s.bulk(ctx, encode(docs))
	switch {
	case status == 0:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, d := range docs {
			d.fail(ErrorCodeConnectionFailed, truncate(err.Error()), false)
		}
		return err
	case resp == nil && err != nil:
		for _, d := range docs {
			d.fail(ErrorCodeMalformedResponse, truncate(err.Error()), false)
		}
		return nil
	case status == http.StatusRequestEntityTooLarge && len(docs) > 1:
		half := len(docs) / 2
		if err := run.send(ctx, docs[:half]); err != nil && ctx.Err() != nil {
			return err
		}
		return run.send(ctx, docs[half:])
	case resp == nil:
		for _, d := range docs {
			d.fail(strconv.Itoa(status), text, !retriable(status))
		}
		return nil
	}
	applyItems(resp, docs)
	return nil
}

// applyItems records each document's outcome from a 2xx bulk answer: indexed, failed for now,
// or failed for good. An answer whose items do not pair one to one with docs fails them all
// (retriably) as a malformed response, and so does an item without exactly one action. Every document ends with a state, or with a code and a
// message saying why not.
func applyItems(resp *bulkResponse, docs []*doc) {
	if len(resp.Items) != len(docs) {
		msg := fmt.Sprintf("the cluster answered %d items for %d documents", len(resp.Items), len(docs))
		for _, d := range docs {
			d.fail(ErrorCodeMalformedResponse, msg, false)
		}
		return
	}
	for i, item := range resp.Items {
		d := docs[i]
		if len(item) != 1 {
			d.fail(ErrorCodeMalformedResponse, fmt.Sprintf("item %d of the answer has %d actions, want 1", i, len(item)), false)
			continue
		}
		var it bulkItem
		for _, v := range item { // the one key: the action
			it = v
		}
		switch {
		case it.Status >= 200 && it.Status < 300:
			d.state = stateIndexed
		case it.Status == http.StatusConflict && d.positionID:
			// A document with this record's own id exists: an earlier attempt or run indexed it.
			d.state = stateIndexed
		default:
			var compact bytes.Buffer
			msg := string(it.Error)
			if json.Compact(&compact, it.Error) == nil {
				msg = compact.String()
			}
			if len(it.Error) == 0 {
				msg = fmt.Sprintf(`{"type":"unknown","reason":"status %d without an error object"}`, it.Status)
			}
			d.fail(strconv.Itoa(it.Status), truncate(msg), !retriable(it.Status))
		}
	}
}
