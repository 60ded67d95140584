package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// runHealthcheck asks a running shardhose whether it is ready (GET /readyz) and exits 0 if it
// is, 1 if not or unreachable: a health check for images without curl (distroless, scratch) and
// for ECS. The address is --url, or metrics.listen of the configuration.
func runHealthcheck(args []string) (int, error) {
	var rawURL string
	var timeout time.Duration
	var live bool
	cfg, fs, err := loadConfig("healthcheck", args, func(fs *pflag.FlagSet) {
		fs.StringVar(&rawURL, "url", "", "the endpoint to ask, e.g. http://127.0.0.1:9464/readyz (default: /readyz on metrics.listen)")
		fs.DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the answer")
		fs.BoolVar(&live, "live", false, "ask /healthz (alive) instead of /readyz (ready)")
	})
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK, nil
	}
	var ue usageError
	if errors.As(err, &ue) {
		return exitConfig, err
	}
	if rawURL == "" {
		if err != nil {
			return exitConfig, err
		}
		path := "/readyz"
		if live {
			path = "/healthz"
		}
		if rawURL, err = healthURL(cfg.Metrics.Listen, path); err != nil {
			return exitConfig, err
		}
	} else if config, _ := fs.GetString("config"); config != "" && err != nil {
		return exitConfig, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return exitConfig, usageError{fmt.Sprintf("--url %q: %v", rawURL, err)}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return exitConfig, fmt.Errorf("not healthy: %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	text := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return exitConfig, fmt.Errorf("not healthy: %s answered %d: %s", rawURL, resp.StatusCode, text)
	}
	fmt.Fprintf(os.Stdout, "%s: %s\n", rawURL, text)
	return exitOK, nil
}

// healthURL is the URL of path on the listener metrics.listen names; a listener on every
// interface is asked on loopback.
func healthURL(listen, path string) (string, error) {
	if listen == "" {
		return "", errors.New("metrics.listen is not set, so shardhose serves no health endpoints: set it (e.g. 127.0.0.1:9464) or pass --url")
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("metrics.listen %q: %w", listen, err)
	}
	if port == "0" {
		return "", errors.New("metrics.listen has port 0 (a free port picked at start): pass --url with the port the daemon logged")
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return (&url.URL{Scheme: "http", Host: net.JoinHostPort(host, port), Path: path}).String(), nil
}
