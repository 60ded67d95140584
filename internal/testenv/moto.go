package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Moto is a moto server of one test's own, for tests that take S3 (or SQS, SNS, Firehose) down
// and bring it back: the shared stack's moto serves other tests at the same time and must stay up.
type Moto struct {
	t        testing.TB
	Endpoint string
	port     int
	cmd      *exec.Cmd
	exited   chan struct{}
}

// motoServer finds the moto_server binary: $SHARDHOSE_MOTO_SERVER, the machine image's pyenv, or PATH.
func motoServer() (string, error) {
	if p := os.Getenv("SHARDHOSE_MOTO_SERVER"); p != "" {
		return p, nil
	}
	if matches, _ := filepath.Glob("/root/.pyenv/versions/*/bin/moto_server"); len(matches) > 0 {
		return matches[len(matches)-1], nil
	}
	return exec.LookPath("moto_server")
}

// StartMoto starts a private moto server on a free 127.0.0.1 port and stops it at cleanup.
func StartMoto(t testing.TB) *Moto {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	m := &Moto{t: t, Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), port: port}
	m.Start()
	t.Cleanup(m.Stop)
	return m
}

// Start (re)starts the server on its port and waits until it answers. Its data starts empty.
func (m *Moto) Start() {
	m.t.Helper()
	bin, err := motoServer()
	if err != nil {
		m.t.Fatalf("moto_server not found (set SHARDHOSE_MOTO_SERVER): %v", err)
	}
	m.cmd = exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(m.port))
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("start moto: %v", err)
	}
	m.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(m.cmd, m.exited)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		if reachable(m.Endpoint) == nil {
			return
		}
		select {
		case <-ctx.Done():
			m.Stop()
			m.t.Fatalf("moto on port %d did not answer within 30s", m.port)
		case <-m.exited:
			m.t.Fatalf("moto on port %d exited at start", m.port)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop kills the server (and its process group) and waits for it to exit.
func (m *Moto) Stop() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	<-m.exited
	m.cmd = nil
}
