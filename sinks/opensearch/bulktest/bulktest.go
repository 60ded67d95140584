// Package bulktest is an in-memory OpenSearch endpoint for tests, written from the documented
// REST formats: the _bulk API (an NDJSON body of action and source lines, answered with
// {"took","errors","items":[{"<action>":{"_index","_id","status","result"|"error"}}]}), GET / (cluster
// info), GET /<index>/_doc/<id>, GET /<index>/_count, POST /<index>/_refresh and DELETE /<index>.
// Documents are kept in memory by index and id.
//
// Knobs make chosen documents fail with a given status and error type a given number of times
// (400 mapper_parsing_exception, 409, 429 es_rejected_execution_exception, 500, ...), make whole
// requests fail or drop the connection, and require basic auth or a valid AWS Signature V4. Every
// request is recorded, with the documents it carried, so a test can check what was resent.
//
// No real OpenSearch runs on the machines this project is built on; tests that need one set
// SHARDHOSE_TEST_OPENSEARCH_URL instead.
package bulktest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Item is one action of a bulk request, as the server parsed it.
type Item struct {
	// Action is index, create, update or delete.
	Action string
	Index  string
	// ID is the _id the client sent; empty when it let the server choose one.
	ID string
	// Type is the _type the client sent (Elasticsearch 6); empty when none.
	Type string
	// Source is the document line (nil for delete).
	Source json.RawMessage
}

// Request is one request the server received.
type Request struct {
	Method string
	Path   string
	Header http.Header
	// Items are the actions of a _bulk request, in order (nil for other requests, or when the
	// body could not be parsed).
	Items []Item
	// Status is the HTTP status answered; 0 when the connection was dropped.
	Status int
}

// Failure makes matching documents fail in bulk responses.
type Failure struct {
	// Status is the item's HTTP status, e.g. 400, 409, 429, 500.
	Status int
	// Type and Reason are the item's error.type and error.reason, e.g. mapper_parsing_exception
	// and "failed to parse field [n] of type [long]".
	Type   string
	Reason string
	// Times is how many matching items fail before the rule is used up; 0 means every time.
	Times int
}

// RequestFailure makes whole requests fail.
type RequestFailure struct {
	// Status is the HTTP status of the answer, with an OpenSearch error body of Type and Reason.
	Status int
	Type   string
	Reason string
	// Drop closes the connection without answering, as a crashed node or a reset does; Status,
	// Type and Reason are then unused.
	Drop bool
	// Times is how many requests fail before the rule is used up; 0 means until ClearFailures.
	Times int
	// Paths limits the rule to requests whose path ends with one of these (e.g. "/_bulk");
	// empty means every request.
	Paths []string
}

type itemRule struct {
	match func(Item) bool
	f     Failure
	used  int
}

type requestRule struct {
	f    RequestFailure
	used int
}

// Server is a running endpoint. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL, e.g. http://127.0.0.1:41234 (https:// for StartTLS).
	URL string

	hs *httptest.Server

	mu          sync.Mutex
	indices     map[string]map[string]json.RawMessage
	seq         int64
	requests    []Request
	itemRules   []*itemRule
	reqRules    []*requestRule
	basicUser   string
	basicPass   string
	sigv4       *sigv4Check
	acceptTypes bool
	changed     chan struct{}
}

// Start runs a server on 127.0.0.1 and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := newServer()
	s.hs = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.hs.Config.ErrorLog = quietLog
	s.hs.Start()
	s.URL = s.hs.URL
	t.Cleanup(s.hs.Close)
	return s
}

// StartTLS runs a server with a self-signed certificate; CertPEM returns the certificate to trust.
func StartTLS(t testing.TB) *Server {
	t.Helper()
	s := newServer()
	s.hs = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.hs.Config.ErrorLog = quietLog // clients that refuse the certificate are expected
	s.hs.StartTLS()
	s.URL = s.hs.URL
	t.Cleanup(s.hs.Close)
	return s
}

var quietLog = log.New(io.Discard, "", 0)

func newServer() *Server {
	return &Server{indices: map[string]map[string]json.RawMessage{}, changed: make(chan struct{})}
}

// CertPEM returns the PEM-encoded certificate of a StartTLS server (nil for a plain one).
func (s *Server) CertPEM() []byte {
	if s.hs.Certificate() == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.hs.Certificate().Raw})
}

// FailDocuments makes items for which match returns true fail as f says. Rules are tried in the
// order they were added; the first one that matches and is not used up decides.
func (s *Server) FailDocuments(match func(Item) bool, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.itemRules = append(s.itemRules, &itemRule{match: match, f: f})
}

// FailID makes the item with the given _id fail as f says.
func (s *Server) FailID(id string, f Failure) {
	s.FailDocuments(func(it Item) bool { return it.ID == id }, f)
}

// FailRequests makes whole requests fail as f says.
func (s *Server) FailRequests(f RequestFailure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqRules = append(s.reqRules, &requestRule{f: f})
}

// ClearFailures removes every document and request failure rule.
func (s *Server) ClearFailures() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.itemRules, s.reqRules = nil, nil
}

// RequireBasicAuth answers 401 to requests without these credentials.
func (s *Server) RequireBasicAuth(user, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.basicUser, s.basicPass = user, password
}

// RequireSigV4 answers 403 to requests that are not signed with creds for region and service
// (es or aoss): it checks the payload hash and recomputes the signature over the signed headers.
func (s *Server) RequireSigV4(creds aws.Credentials, region, service string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sigv4 = &sigv4Check{creds: creds, region: region, service: service}
}

// AcceptTypes makes the server take _type in action lines, as Elasticsearch 6 does. By default
// it refuses the whole request, as OpenSearch 2 does.
func (s *Server) AcceptTypes() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acceptTypes = true
}

// Requests returns every request received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// BulkRequests returns the _bulk requests received so far, in order.
func (s *Server) BulkRequests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if isBulkPath(r.Path) {
			out = append(out, r)
		}
	}
	return out
}

// Document returns the source stored under index and id.
func (s *Server) Document(index, id string) (json.RawMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.indices[index][id]
	return d, ok
}

// Documents returns a copy of the documents of index, by id.
func (s *Server) Documents(index string) map[string]json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]json.RawMessage, len(s.indices[index]))
	for id, d := range s.indices[index] {
		out[id] = d
	}
	return out
}

// Indices returns the names of the indices that hold documents, with their document counts.
func (s *Server) Indices() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.indices))
	for name, docs := range s.indices {
		out[name] = len(docs)
	}
	return out
}

// Count returns the number of documents in every index together.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, docs := range s.indices {
		n += len(docs)
	}
	return n
}

// WaitBulkRequests blocks until at least n _bulk requests have been answered (or dropped), or
// ctx ends.
func (s *Server) WaitBulkRequests(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		got := 0
		for _, r := range s.requests {
			if isBulkPath(r.Path) {
				got++
			}
		}
		ch := s.changed
		s.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %d bulk requests (%d so far): %w", n, got, ctx.Err())
		case <-ch:
		}
	}
}

func isBulkPath(p string) bool { return p == "/_bulk" || strings.HasSuffix(p, "/_bulk") }

// record appends r and wakes waiters; s.mu must be held.
func (s *Server) recordLocked(r Request) {
	s.requests = append(s.requests, r)
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "parse_exception", "read request body: "+err.Error())
		return
	}
	rec := Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone()}
	bulk := isBulkPath(r.URL.Path) && (r.Method == http.MethodPost || r.Method == http.MethodPut)
	var items []Item
	var parseErr error
	if bulk {
		items, parseErr = parseBulk(body, bulkPathIndex(r.URL.Path))
		rec.Items = items
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if status, typ, reason := s.authLocked(r, body); status != 0 {
		rec.Status = status
		s.recordLocked(rec)
		writeError(w, status, typ, reason)
		return
	}
	if rule := s.requestRuleLocked(r.URL.Path); rule != nil {
		if rule.Drop {
			s.recordLocked(rec)
			dropConnection(w)
			return
		}
		rec.Status = rule.Status
		s.recordLocked(rec)
		writeError(w, rule.Status, rule.Type, rule.Reason)
		return
	}

	switch {
	case bulk:
		if parseErr == nil && !s.acceptTypes {
			for i, it := range items {
				if it.Type != "" {
					parseErr = fmt.Errorf("Action/metadata line [%d] contains an unknown parameter [_type]", 2*i+1)
					break
				}
			}
		}
		if parseErr != nil {
			rec.Status = http.StatusBadRequest
			s.recordLocked(rec)
			writeError(w, http.StatusBadRequest, "illegal_argument_exception", parseErr.Error())
			return
		}
		rec.Status = http.StatusOK
		resp := s.bulkLocked(items)
		s.recordLocked(rec)
		writeJSON(w, http.StatusOK, resp)
	case r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		rec.Status = http.StatusOK
		s.recordLocked(rec)
		writeJSON(w, http.StatusOK, clusterInfo)
	case r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/_doc/"):
		index, id, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/_doc/")
		src, ok := s.indices[index][id]
		out := map[string]any{"_index": index, "_id": id, "found": ok}
		rec.Status = http.StatusOK
		if ok {
			out["_source"] = src
		} else {
			rec.Status = http.StatusNotFound
		}
		s.recordLocked(rec)
		writeJSON(w, rec.Status, out)
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/_count"):
		index := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/_count")
		rec.Status = http.StatusOK
		s.recordLocked(rec)
		writeJSON(w, http.StatusOK, map[string]any{"count": len(s.indices[index])})
	case r.Method == http.MethodDelete && strings.Count(r.URL.Path, "/") == 1 && len(r.URL.Path) > 1:
		index := strings.TrimPrefix(r.URL.Path, "/")
		rec.Status = http.StatusOK
		if _, ok := s.indices[index]; !ok {
			rec.Status = http.StatusNotFound
			s.recordLocked(rec)
			writeError(w, http.StatusNotFound, "index_not_found_exception", "no such index ["+index+"]")
			return
		}
		delete(s.indices, index)
		s.recordLocked(rec)
		writeJSON(w, http.StatusOK, map[string]any{"acknowledged": true})
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/_refresh"):
		rec.Status = http.StatusOK
		s.recordLocked(rec)
		writeJSON(w, http.StatusOK, map[string]any{"_shards": map[string]int{"total": 1, "successful": 1, "failed": 0}})
	default:
		rec.Status = http.StatusNotFound
		s.recordLocked(rec)
		writeJSON(w, http.StatusNotFound, map[string]any{
			"error":  fmt.Sprintf("no handler found for uri [%s] and method [%s]", r.URL.RequestURI(), r.Method),
			"status": http.StatusNotFound,
		})
	}
}

var clusterInfo = map[string]any{
	"name":         "bulktest-node-1",
	"cluster_name": "bulktest",
	"cluster_uuid": "bulktest-0000000000000000",
	"version": map[string]any{
		"distribution":                        "opensearch",
		"number":                              "2.13.0",
		"build_type":                          "tar",
		"lucene_version":                      "9.10.0",
		"minimum_wire_compatibility_version":  "7.10.0",
		"minimum_index_compatibility_version": "7.0.0",
	},
	"tagline": "The OpenSearch Project: https://opensearch.org/",
}

func (s *Server) authLocked(r *http.Request, body []byte) (status int, typ, reason string) {
	if s.basicUser != "" {
		u, p, ok := r.BasicAuth()
		if !ok || u != s.basicUser || p != s.basicPass {
			return http.StatusUnauthorized, "security_exception", "missing authentication credentials for REST request [" + r.URL.Path + "]"
		}
	}
	if s.sigv4 != nil {
		if err := s.sigv4.verify(r, body); err != nil {
			return http.StatusForbidden, "security_exception", "The request signature we calculated does not match the signature you provided: " + err.Error()
		}
	}
	return 0, "", ""
}

func (s *Server) requestRuleLocked(path string) *RequestFailure {
	for _, rr := range s.reqRules {
		if rr.f.Times > 0 && rr.used >= rr.f.Times {
			continue
		}
		if len(rr.f.Paths) > 0 {
			hit := false
			for _, p := range rr.f.Paths {
				hit = hit || strings.HasSuffix(path, p)
			}
			if !hit {
				continue
			}
		}
		rr.used++
		return &rr.f
	}
	return nil
}

func (s *Server) itemFailureLocked(it Item) *Failure {
	for _, ir := range s.itemRules {
		if ir.f.Times > 0 && ir.used >= ir.f.Times {
			continue
		}
		if ir.match(it) {
			ir.used++
			return &ir.f
		}
	}
	return nil
}

// bulkLocked applies items in order and returns the response body.
func (s *Server) bulkLocked(items []Item) map[string]any {
	start := time.Now()
	out := make([]any, 0, len(items))
	errorsSeen := false
	for _, it := range items {
		res := s.applyLocked(it)
		if _, failed := res["error"]; failed {
			errorsSeen = true
		}
		out = append(out, map[string]any{it.Action: res})
	}
	return map[string]any{"took": time.Since(start).Milliseconds(), "errors": errorsSeen, "items": out}
}

func (s *Server) applyLocked(it Item) map[string]any {
	id := it.ID
	if id == "" && (it.Action == "index" || it.Action == "create") {
		s.seq++
		id = "auto-" + strconv.FormatInt(s.seq, 10)
	}
	res := map[string]any{"_index": it.Index, "_id": id}
	fail := func(status int, typ, reason string) map[string]any {
		res["status"] = status
		res["error"] = map[string]any{"type": typ, "reason": reason, "index": it.Index}
		return res
	}
	if it.Index == "" {
		return fail(http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: index is missing;")
	}
	if f := s.itemFailureLocked(it); f != nil {
		return fail(f.Status, f.Type, f.Reason)
	}
	docs := s.indices[it.Index]
	switch it.Action {
	case "index", "create":
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(it.Source, &obj); err != nil || obj == nil {
			return fail(http.StatusBadRequest, "mapper_parsing_exception", "failed to parse")
		}
		if docs == nil {
			docs = map[string]json.RawMessage{}
			s.indices[it.Index] = docs
		}
		_, exists := docs[id]
		if exists && it.Action == "create" {
			return fail(http.StatusConflict, "version_conflict_engine_exception", fmt.Sprintf("[%s]: version conflict, document already exists (current version [1])", id))
		}
		docs[id] = append(json.RawMessage(nil), it.Source...)
		s.seq++
		res["_version"] = 1
		res["_seq_no"] = s.seq
		res["_primary_term"] = 1
		res["_shards"] = map[string]int{"total": 2, "successful": 1, "failed": 0}
		if exists {
			res["result"], res["status"] = "updated", http.StatusOK
		} else {
			res["result"], res["status"] = "created", http.StatusCreated
		}
	case "delete":
		if _, ok := docs[id]; !ok {
			res["result"], res["status"] = "not_found", http.StatusNotFound
			return res
		}
		delete(docs, id)
		res["result"], res["status"] = "deleted", http.StatusOK
	default:
		return fail(http.StatusBadRequest, "illegal_argument_exception", "bulktest does not implement the "+it.Action+" action")
	}
	return res
}

// parseBulk reads an NDJSON bulk body. defaultIndex comes from a /<index>/_bulk path.
func parseBulk(body []byte, defaultIndex string) ([]Item, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("request body is required")
	}
	if body[len(body)-1] != '\n' {
		return nil, fmt.Errorf("The bulk request must be terminated by a newline [\\n]")
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 256<<20)
	var items []Item
	line := 0
	for sc.Scan() {
		line++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var action map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
			Type  string `json:"_type"`
		}
		if err := json.Unmarshal(sc.Bytes(), &action); err != nil || len(action) != 1 {
			return nil, fmt.Errorf("Malformed action/metadata line [%d], expected a simple value for field [_index] but found an object or invalid JSON", line)
		}
		for name, meta := range action {
			it := Item{Action: name, Index: meta.Index, ID: meta.ID, Type: meta.Type}
			if it.Index == "" {
				it.Index = defaultIndex
			}
			switch name {
			case "index", "create", "update":
				if !sc.Scan() {
					return nil, fmt.Errorf("Validation Failed: 1: no requests added; action/metadata line [%d] has no source", line)
				}
				line++
				it.Source = append(json.RawMessage(nil), sc.Bytes()...)
			case "delete":
			default:
				return nil, fmt.Errorf("Malformed action/metadata line [%d], expected field [create], [delete], [index] or [update] but found [%s]", line, name)
			}
			items = append(items, it)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read bulk body: %w", err)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("Validation Failed: 1: no requests added;")
	}
	return items, nil
}

func bulkPathIndex(p string) string {
	if p == "/_bulk" {
		return ""
	}
	return strings.TrimPrefix(strings.TrimSuffix(p, "/_bulk"), "/")
}

func readBody(r *http.Request) ([]byte, error) {
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		rd = zr
	}
	return io.ReadAll(rd)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers in OpenSearch's error format.
func writeError(w http.ResponseWriter, status int, typ, reason string) {
	if typ == "" {
		typ = "exception"
	}
	cause := map[string]any{"type": typ, "reason": reason}
	writeJSON(w, status, map[string]any{
		"error":  map[string]any{"root_cause": []any{cause}, "type": typ, "reason": reason},
		"status": status,
	})
}

func dropConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
