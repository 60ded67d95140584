package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestImageBuildsFromScratchAndRuns builds deploy/container/Dockerfile with buildah and runs the
// binary inside it. The Go image of the build stage cannot be pulled here, so the test supplies
// that stage's output (--build-context build=DIR): the static binary built as the stage builds it
// (CGO_ENABLED=0, version and commit through -ldflags -X), CA certificates and the passwd entry.
// The final stage, FROM scratch, is built as written.
func TestImageBuildsFromScratchAndRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: building an image takes a while")
	}
	buildah, err := exec.LookPath("buildah")
	if err != nil {
		t.Skip("buildah is not installed (apt-get install buildah): the container image is not built by this run")
	}
	const certs = "/etc/ssl/certs/ca-certificates.crt"
	if _, err := os.Stat(certs); err != nil {
		t.Skipf("no CA bundle at %s to put in the image", certs)
	}
	ctx := t.TempDir()
	out := filepath.Join(ctx, "out")
	for _, d := range []string{"etc/ssl/certs"} {
		if err := os.MkdirAll(filepath.Join(out, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	version, commit := "v0.0.0-imagetest", "0123456789ab"
	// No -trimpath here (the Dockerfile has it): it would rebuild every dependency.
	build := exec.Command("go", "build",
		"-ldflags", fmt.Sprintf("-s -w -X main.buildVersion=%s -X main.buildCommit=%s", version, commit),
		"-o", filepath.Join(out, "shardhose"), "../cmd/shardhose")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	cert, err := os.ReadFile(certs)
	if err != nil {
		t.Fatal(err)
	}
	for path, body := range map[string]string{
		"etc/ssl/certs/ca-certificates.crt": string(cert),
		"etc/passwd":                        "shardhose:x:65532:65532:shardhose:/nonexistent:/sbin/nologin\n",
		"etc/group":                         "shardhose:x:65532:\n",
	} {
		if err := os.WriteFile(filepath.Join(out, path), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	tag := fmt.Sprintf("localhost/shardhose-imagetest:%d", time.Now().UnixNano())
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(buildah, args...)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("buildah %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return string(b)
	}
	run("bud", "--format", "docker", "--isolation", "chroot", "--pull-never",
		"--build-context", "build="+ctx, "-f", "container/Dockerfile", "-t", tag, "..")
	t.Cleanup(func() { _ = exec.Command(buildah, "rmi", "-f", tag).Run() })

	var inspect struct {
		Docker struct {
			Config struct {
				User        string
				Entrypoint  []string
				Healthcheck struct{ Test []string }
				Env         []string
			} `json:"config"`
		}
	}
	if err := json.Unmarshal([]byte(run("inspect", "--type", "image", tag)), &inspect); err != nil {
		t.Fatalf("buildah inspect: %v", err)
	}
	c := inspect.Docker.Config
	if c.User != "65532:65532" {
		t.Errorf("user %q, want the non-root 65532:65532", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/shardhose"}) {
		t.Errorf("entrypoint %q", c.Entrypoint)
	}
	if !slices.Equal(c.Healthcheck.Test, []string{"CMD", "/shardhose", "healthcheck"}) {
		t.Errorf("health check %q, want CMD /shardhose healthcheck (no shell in a scratch image)", c.Healthcheck.Test)
	}

	ctr := strings.TrimSpace(run("from", "--pull-never", tag))
	t.Cleanup(func() { _ = exec.Command(buildah, "rm", ctr).Run() })
	got := run("run", "--isolation", "chroot", ctr, "--", "/shardhose", "version")
	if want := "shardhose " + version + " (commit " + commit + ", go1."; !strings.HasPrefix(got, want) {
		t.Errorf("version in the image: %q, want prefix %q", got, want)
	}
	// A scratch image has no libc: a binary that was not static would not have started above.
	t.Logf("image %s built FROM scratch and ran: %s", tag, strings.TrimSpace(got))
}
