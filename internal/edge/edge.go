// Package edge is a single HTTP endpoint in front of several AWS emulators, routing each request
// by the service named in its SigV4 credential scope, the way LocalStack's edge port (4566) does.
// It lets the local stack (kinesis-local, dynalite, moto) be used through one aws.endpoint, which
// proves a configuration written for LocalStack (configs/localstack.yaml) without LocalStack.
package edge

import (
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
)

// Service returns the signing name in a request's SigV4 credential scope
// (Credential=<key>/<date>/<region>/<service>/aws4_request), from the Authorization header or,
// for presigned URLs, the X-Amz-Credential query parameter; "" when the request is not signed.
func Service(r *http.Request) string {
	cred := r.URL.Query().Get("X-Amz-Credential")
	if auth := r.Header.Get("Authorization"); strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") {
		for _, part := range strings.Split(strings.TrimPrefix(auth, "AWS4-HMAC-SHA256 "), ",") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(part), "Credential="); ok {
				cred = v
			}
		}
	}
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return ""
	}
	return scope[3]
}

// Router forwards each request to the backend of its service, unchanged (Host header included,
// so signatures stay valid), and counts the requests per service. It is safe for concurrent use.
type Router struct {
	proxies map[string]*httputil.ReverseProxy
	mu      sync.Mutex
	counts  map[string]int
}

// New returns a Router for backends, a map from signing name (kinesis, dynamodb, s3, sqs, sns,
// firehose, lambda, monitoring, ...) to the emulator's base URL.
func New(backends map[string]string) (*Router, error) {
	r := &Router{proxies: map[string]*httputil.ReverseProxy{}, counts: map[string]int{}}
	for service, base := range backends {
		u, err := url.Parse(base)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("edge: backend of %s: %q is not a URL like http://127.0.0.1:4566", service, base)
		}
		r.proxies[service] = &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
		}}
	}
	return r, nil
}

// ServeHTTP routes one request; a request for a service without a backend is answered 501 with
// a message naming the service.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	service := Service(req)
	p, ok := r.proxies[service]
	if !ok {
		http.Error(w, fmt.Sprintf("edge: no backend for service %q (from the request's SigV4 credential scope)", service), http.StatusNotImplemented)
		return
	}
	r.mu.Lock()
	r.counts[service]++
	r.mu.Unlock()
	p.ServeHTTP(w, req)
}

// Counts returns how many requests each service received.
func (r *Router) Counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.counts))
	for k, v := range r.counts {
		out[k] = v
	}
	return out
}
