package main

import (
	"fmt"
	goruntime "runtime"
	"runtime/debug"
	"strings"
	"time"
)

// Set at link time by `make build` and the container image:
//
//	-ldflags "-X main.buildVersion=v1.2.3 -X main.buildCommit=0123456789ab"
var (
	buildVersion = ""
	buildCommit  = ""
)

// buildInfo is what `shardhose version` prints.
type buildInfo struct {
	Version, Commit, Go, Platform string
}

func (b buildInfo) String() string {
	return fmt.Sprintf("shardhose %s (commit %s, %s %s)", b.Version, b.Commit, b.Go, b.Platform)
}

// currentBuild returns the version and commit given at link time; without them, those the Go
// toolchain stamped from the checkout (a pseudo-version v0.0.0-<commit time>-<commit>, +dirty
// for uncommitted changes), or "unknown" when it stamped none (go run, go test).
func currentBuild() buildInfo {
	b := buildInfo{Version: buildVersion, Commit: buildCommit, Go: goruntime.Version(), Platform: goruntime.GOOS + "/" + goruntime.GOARCH}
	info, ok := debug.ReadBuildInfo()
	var rev, when string
	dirty := false
	if ok {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if b.Commit == "" {
		b.Commit = rev
		if dirty && rev != "" {
			b.Commit += "+dirty"
		}
	}
	if b.Version == "" && ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		b.Version = info.Main.Version // installed with go install module@version
	}
	if b.Version == "" && rev != "" {
		stamp := "00000000000000"
		if t, err := time.Parse(time.RFC3339, when); err == nil {
			stamp = t.UTC().Format("20060102150405")
		}
		b.Version = "v0.0.0-" + stamp + "-" + rev
		if dirty {
			b.Version += "+dirty"
		}
	}
	b.Version = strings.TrimSpace(b.Version)
	if b.Version == "" {
		b.Version = "unknown"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	return b
}
