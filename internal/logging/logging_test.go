package logging

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewFormats(t *testing.T) {
	for _, c := range []struct {
		format string
		json   bool
	}{
		{"json", true},
		{"text", false},
		{"auto", true}, // a buffer is not a terminal
	} {
		var buf bytes.Buffer
		log, err := New(c.format, "info", &buf)
		if err != nil {
			t.Fatalf("New(%q): %v", c.format, err)
		}
		log.Info("hello", "shard", "shardId-000000000001")
		line := buf.String()
		var m map[string]any
		isJSON := json.Unmarshal([]byte(line), &m) == nil
		if isJSON != c.json {
			t.Errorf("format %q wrote %q; JSON = %v, want %v", c.format, line, isJSON, c.json)
		}
		if !strings.Contains(line, "shardId-000000000001") {
			t.Errorf("format %q lost the attribute: %q", c.format, line)
		}
	}
}

func TestNewLevels(t *testing.T) {
	for level, wantDebug := range map[string]bool{"debug": true, "info": false, "warn": false, "error": false} {
		var buf bytes.Buffer
		log, err := New("text", level, &buf)
		if err != nil {
			t.Fatalf("New(level %q): %v", level, err)
		}
		log.Debug("d")
		log.Error("e")
		if got := strings.Contains(buf.String(), "msg=d"); got != wantDebug {
			t.Errorf("level %q: debug written = %v, want %v", level, got, wantDebug)
		}
		if !strings.Contains(buf.String(), "msg=e") {
			t.Errorf("level %q: error not written", level)
		}
	}
}

func TestNewRejectsUnknownValues(t *testing.T) {
	if _, err := New("logfmt", "info", &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "auto, json or text") {
		t.Errorf("format logfmt: err = %v", err)
	}
	if _, err := New("json", "verbose", &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "debug, info, warn or error") {
		t.Errorf("level verbose: err = %v", err)
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Error("a regular file is a terminal")
	}
	if IsTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is a terminal")
	}
	var nilFile *os.File
	if IsTerminal(nilFile) {
		t.Error("a nil *os.File is a terminal")
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		if !IsTerminal(tty) {
			t.Error("/dev/tty is not a terminal")
		}
	}
}
