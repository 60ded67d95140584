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

// Server is an emulator process of one test's own, for tests that take a service down (or
// freeze it) and bring it back: the shared stack's servers serve other tests at the same time
// and must stay up. It listens on a free 127.0.0.1 port and is killed at cleanup.
type Server struct {
	t        testing.TB
	name     string
	Endpoint string
	port     int
	argv     func(port int) ([]string, error)
	cmd      *exec.Cmd
	exited   chan struct{}
}

// Moto is a private moto server (S3, SQS, SNS, Firehose).
type Moto = Server

// Dynalite is a private dynalite server (DynamoDB).
type Dynalite = Server

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
	return startServer(t, "moto", func(port int) ([]string, error) {
		bin, err := motoServer()
		if err != nil {
			return nil, fmt.Errorf("moto_server not found (set SHARDHOSE_MOTO_SERVER): %w", err)
		}
		return []string{bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port)}, nil
	})
}

// StartDynalite starts a private dynalite (installed in deploy/local by the stack's scripts) on
// a free 127.0.0.1 port and stops it at cleanup.
func StartDynalite(t testing.TB) *Dynalite {
	t.Helper()
	return startServer(t, "dynalite", func(port int) ([]string, error) {
		node, err := exec.LookPath("node")
		if err != nil {
			return nil, fmt.Errorf("node not found: %w", err)
		}
		root, err := repoRoot()
		if err != nil {
			return nil, err
		}
		cli := filepath.Join(root, "deploy", "local", "node_modules", "dynalite", "cli.js")
		if _, err := os.Stat(cli); err != nil {
			return nil, fmt.Errorf("dynalite is not installed (make local-up installs it): %w", err)
		}
		// The guard keeps dynalite alive when a client aborts a request (see the script).
		guard := filepath.Join(root, "deploy", "local", "lib", "abort-guard.js")
		return []string{node, "--require", guard, cli, "--host", "127.0.0.1", "--port", fmt.Sprint(port),
			"--createTableMs", "50", "--deleteTableMs", "50", "--updateTableMs", "50"}, nil
	})
}

// Kinesalite is a private kinesalite server (Kinesis).
type Kinesalite = Server

// StartKinesalite starts a private kinesalite as the stack's scripts run it
// (deploy/local/lib/kinesalite.js, kept on 127.0.0.1 by lib/loopback.js) on a free 127.0.0.1
// port and stops it at cleanup.
func StartKinesalite(t testing.TB) *Kinesalite {
	t.Helper()
	return startServer(t, "kinesalite", func(port int) ([]string, error) {
		node, err := exec.LookPath("node")
		if err != nil {
			return nil, fmt.Errorf("node not found: %w", err)
		}
		env, err := exec.LookPath("env")
		if err != nil {
			return nil, err
		}
		root, err := repoRoot()
		if err != nil {
			return nil, err
		}
		local := filepath.Join(root, "deploy", "local")
		if _, err := os.Stat(filepath.Join(local, "node_modules", "kinesalite")); err != nil {
			return nil, fmt.Errorf("kinesalite is not installed (make local-up installs it): %w", err)
		}
		return []string{env, fmt.Sprintf("KINESALITE_PORT=%d", port), node, "--require", filepath.Join(local, "lib", "loopback.js"),
			filepath.Join(local, "lib", "kinesalite.js")}, nil
	})
}

// repoRoot is the directory of the module's go.mod, found upwards from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

func startServer(t testing.TB, name string, argv func(port int) ([]string, error)) *Server {
	t.Helper()
	NeedsServers(t, "a "+name+" server of its own")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{t: t, name: name, Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), port: port, argv: argv}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start (re)starts the server on its port and waits until it answers. Its data starts empty.
func (s *Server) Start() {
	s.t.Helper()
	argv, err := s.argv(s.port)
	if err != nil {
		s.t.Fatalf("start %s: %v", s.name, err)
	}
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", s.name, err)
	}
	s.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(s.cmd, s.exited)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		if reachable(s.Endpoint) == nil {
			return
		}
		select {
		case <-ctx.Done():
			s.Stop()
			s.t.Fatalf("%s on port %d did not answer within 30s", s.name, s.port)
		case <-s.exited:
			s.t.Fatalf("%s on port %d exited at start", s.name, s.port)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Freeze stops the server's processes (SIGSTOP): connections are still accepted by the kernel,
// but nothing is answered, as when a host hangs or a partition swallows the packets. Thaw
// resumes them. A test that ends while the server is frozen thaws it first, so that the
// cleanups of its resources (deleting a bucket, say) do not hang.
func (s *Server) Freeze() {
	s.signal(syscall.SIGSTOP)
	s.t.Cleanup(func() {
		if s.cmd != nil && s.cmd.Process != nil {
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGCONT)
		}
	})
}

// Thaw resumes a frozen server (SIGCONT).
func (s *Server) Thaw() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	if s.cmd == nil || s.cmd.Process == nil {
		s.t.Fatalf("%s is not running", s.name)
	}
	if err := syscall.Kill(-s.cmd.Process.Pid, sig); err != nil {
		s.t.Fatalf("send %v to %s: %v", sig, s.name, err)
	}
}

// Stop kills the server (and its process group) and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
	s.cmd = nil
}
