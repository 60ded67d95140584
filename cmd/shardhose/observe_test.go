package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/shardhose/shardhose/config"
	"github.com/shardhose/shardhose/internal/clock"
)

func observeConfig(listen string, pprof bool) config.Config {
	c := config.Defaults()
	c.Stream.Name = "orders"
	c.Sinks = []config.Sink{{Name: "out", Type: "file"}}
	c.Metrics.Listen = listen
	c.Metrics.Pprof = pprof
	return c
}

func status(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The listener serves /metrics, /healthz and /readyz (starting, then ready after the start-up
// checks and a lease pass, then draining), and /debug/pprof/ only when metrics.pprof is on.
func TestObservabilityListener(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, pprof := range []bool{false, true} {
		o, err := startObservability(observeConfig("127.0.0.1:0", pprof), aws.Config{}, log, clock.Real(), nil)
		if err != nil {
			t.Fatal(err)
		}
		base := "http://" + o.addr
		if code, body := status(t, base+"/readyz"); code != 503 || !strings.Contains(body, "starting") {
			t.Errorf("/readyz before start-up: %d %q", code, body)
		}
		o.started()
		for _, h := range o.hooks {
			if p, ok := h.(interface{ OnLeasePass() }); ok {
				p.OnLeasePass()
			}
		}
		if code, body := status(t, base+"/readyz"); code != 200 {
			t.Errorf("/readyz after start-up and a lease pass: %d %q", code, body)
		}
		if code, body := status(t, base+"/metrics"); code != 200 || !strings.Contains(body, "shardhose_leases_held") {
			t.Errorf("/metrics: %d, has shardhose_leases_held: %v", code, strings.Contains(body, "shardhose_leases_held"))
		}
		o.draining()
		if code, body := status(t, base+"/readyz"); code != 503 || !strings.Contains(body, "draining") {
			t.Errorf("/readyz while draining: %d %q", code, body)
		}
		if code, _ := status(t, base+"/healthz"); code != 200 {
			t.Errorf("/healthz while draining: %d, want 200 (alive)", code)
		}
		want := 404
		if pprof {
			want = 200
		}
		if code, _ := status(t, base+"/debug/pprof/"); code != want {
			t.Errorf("pprof %v: /debug/pprof/ answered %d, want %d", pprof, code, want)
		}
		o.close()
	}
}

// A listen address in use is a start-up error naming the key; with the section at its defaults
// nothing is built.
func TestObservabilityStartUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	log := slog.New(slog.DiscardHandler)
	if _, err := startObservability(observeConfig(ln.Addr().String(), false), aws.Config{}, log, clock.Real(), nil); err == nil || !strings.Contains(err.Error(), "metrics.listen") {
		t.Fatalf("port in use: %v, want an error naming metrics.listen", err)
	}
	o, err := startObservability(observeConfig("", false), aws.Config{}, log, clock.Real(), nil)
	if err != nil || len(o.hooks) != 0 || o.server != nil {
		t.Fatalf("defaults: %+v, %v; want nothing built", o, err)
	}
	o.started()
	o.draining()
	o.close()
}
