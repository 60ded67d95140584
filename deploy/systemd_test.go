// Package deploy holds no code: its tests check the deployment files beside them (the systemd
// unit, the ECS task definition and CloudFormation template, the container image) against the
// daemon's configuration defaults and the tools that judge them.
package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shardhose/shardhose/config"
)

const unitPath = "systemd/shardhose.service"

// unitSettings reads the [Service] section of the unit: each key with its values in order.
func unitSettings(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: %q is not KEY=VALUE", unitPath, line)
			}
			out[k] = append(out[k], v)
		}
	}
	return out
}

func one(t *testing.T, s map[string][]string, key string) string {
	t.Helper()
	v := s[key]
	if len(v) != 1 {
		t.Fatalf("%s: %s set %d times, want once", unitPath, key, len(v))
	}
	return v[0]
}

func TestUnitStopsAfterTheDrainAndDoesNotRestartBadConfigs(t *testing.T) {
	s := unitSettings(t)
	def := config.Defaults()
	stop, err := time.ParseDuration(one(t, s, "TimeoutStopSec"))
	if err != nil {
		t.Fatal(err)
	}
	if stop <= def.Shutdown.DrainTimeout {
		t.Errorf("TimeoutStopSec %s must be above shutdown.drain_timeout %s, or systemd kills a drain in progress", stop, def.Shutdown.DrainTimeout)
	}
	wd, err := time.ParseDuration(one(t, s, "WatchdogSec"))
	if err != nil {
		t.Fatal(err)
	}
	if wd < 2*def.Leases.RenewInterval {
		t.Errorf("WatchdogSec %s is shorter than twice leases.renew_interval %s: the daemon refuses to start", wd, def.Leases.RenewInterval)
	}
	for key, want := range map[string]string{
		"Type": "notify", "RestartPreventExitStatus": "1", "KillSignal": "SIGTERM",
		"DynamicUser": "yes", "ProtectSystem": "strict", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "",
	} {
		if got := one(t, s, key); got != want {
			t.Errorf("%s=%q, want %q", key, got, want)
		}
	}
	if !strings.HasPrefix(one(t, s, "EnvironmentFile"), "-/etc/shardhose/") {
		t.Errorf("EnvironmentFile should be an optional file under /etc/shardhose")
	}
	if !strings.Contains(strings.Join(s["SystemCallFilter"], " "), "@system-service") {
		t.Errorf("SystemCallFilter lacks @system-service: %q", s["SystemCallFilter"])
	}
	if af := one(t, s, "RestrictAddressFamilies"); af != "AF_INET AF_INET6 AF_UNIX" {
		t.Errorf("RestrictAddressFamilies=%q: the daemon needs IPv4/IPv6 and AF_UNIX (the notify socket), nothing else", af)
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// TestUnitExposureIsAtMostTwo runs systemd-analyze security on the unit file (offline, so no
// systemd needs to run) and requires an exposure of 2.0 or less.
func TestUnitExposureIsAtMostTwo(t *testing.T) {
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed; cannot score the unit's exposure")
	}
	out, err := exec.Command(bin, "security", "--offline=yes", "--no-pager", unitPath).CombinedOutput()
	m := exposureRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security printed no exposure level (err %v):\n%s", err, out)
	}
	exposure, perr := strconv.ParseFloat(string(m[1]), 64)
	if perr != nil {
		t.Fatal(perr)
	}
	t.Logf("systemd-analyze security --offline=yes %s: exposure %.1f", unitPath, exposure)
	if exposure > 2.0 {
		t.Fatalf("exposure %.1f is above 2.0:\n%s", exposure, out)
	}
}

// TestUnitVerifies runs systemd-analyze verify on the unit, with the binary's path pointed at an
// executable that exists here: an unknown or misspelt directive fails it.
func TestUnitVerifies(t *testing.T) {
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed; cannot verify the unit")
	}
	exe, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1) to stand in for the binary")
	}
	unit, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "shardhose.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/shardhose", exe)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
