package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// healthConfig writes a valid configuration whose metrics.listen is listen.
func healthConfig(t *testing.T, listen string) string {
	t.Helper()
	y := fmt.Sprintf(`stream: {name: orders}
sinks: [{name: out, type: file}]
metrics: {listen: %q}
`, listen)
	p := filepath.Join(t.TempDir(), "shardhose.yaml")
	if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// `shardhose healthcheck -c FILE` asks /readyz on metrics.listen and exits 0 or 1 with its answer.
func TestHealthcheckFollowsReadyz(t *testing.T) {
	var ready atomic.Bool
	var asked atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Store(r.URL.Path)
		if ready.Load() {
			fmt.Fprintln(w, "ok")
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "draining: stopping after a signal")
	}))
	defer srv.Close()
	cfg := healthConfig(t, strings.TrimPrefix(srv.URL, "http://"))

	if out, code := runCLI(t, "healthcheck", "-c", cfg); code != 1 || !strings.Contains(out, "answered 503: draining") {
		t.Errorf("not ready: exit %d %q, want 1 naming the reason", code, out)
	}
	if p, _ := asked.Load().(string); p != "/readyz" {
		t.Errorf("asked %q, want /readyz", p)
	}
	ready.Store(true)
	if out, code := runCLI(t, "healthcheck", "-c", cfg); code != 0 {
		t.Errorf("ready: exit %d %q, want 0", code, out)
	}
	if _, code := runCLI(t, "healthcheck", "-c", cfg, "--live"); code != 0 {
		t.Errorf("--live: exit %d", code)
	}
	if p, _ := asked.Load().(string); p != "/healthz" {
		t.Errorf("--live asked %q, want /healthz", p)
	}
	if out, code := runCLI(t, "healthcheck", "--url", srv.URL+"/readyz"); code != 0 {
		t.Errorf("--url without a config: exit %d %q", code, out)
	}
	srv.Close()
	if out, code := runCLI(t, "healthcheck", "-c", cfg); code != 1 || !strings.Contains(out, "not healthy") {
		t.Errorf("nothing listening: exit %d %q, want 1", code, out)
	}
	if out, code := runCLI(t, "healthcheck", "-c", healthConfig(t, "")); code != 1 || !strings.Contains(out, "metrics.listen is not set") {
		t.Errorf("no listener configured: exit %d %q, want 1 with a hint", code, out)
	}
}
