// Package redisproc runs a private redis-server as a child process, listening
// only on a Unix socket in a directory of the caller's, keeping nothing on
// disk. The standalone process uses it for portal sessions, OAuth2 state and
// rate limits when no REDIS_URL is configured; tests use it (through
// libs/testkit/redistest) so that every test package talks to a real Redis of
// its own and never to whatever already listens on 6379.
package redisproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ErrNotInstalled is returned by Start when no redis-server binary is found.
var ErrNotInstalled = errors.New("redis-server not found in PATH (scripts/deps.sh installs it)")

// Proc is a running redis-server.
type Proc struct {
	cmd    *exec.Cmd
	socket string
	done   chan struct{}
	err    error
}

// Binary returns the path of redis-server, or ErrNotInstalled.
func Binary() (string, error) {
	if p := os.Getenv("REDIS_SERVER_BIN"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", ErrNotInstalled
	}
	return p, nil
}

// Start runs redis-server with its socket in dir (which must exist and be
// short enough for a Unix socket path, about 100 bytes) and waits until it
// answers PING, at most 10 s.
func Start(ctx context.Context, dir string) (*Proc, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "redis.sock")
	if len(sock) > 100 {
		return nil, fmt.Errorf("redis socket path too long (%d bytes): %s", len(sock), sock)
	}
	cmd := exec.Command(bin,
		"--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", dir,
		"--logfile", filepath.Join(dir, "redis.log"), "--daemonize", "no")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	p := &Proc{cmd: cmd, socket: sock, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ping(sock) == nil {
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("redis-server exited at start (%v); see %s", p.err, filepath.Join(dir, "redis.log"))
		case <-ctx.Done():
			p.Stop()
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("redis-server did not answer on %s within 10s", sock)
		}
	}
}

// ping sends an inline PING and expects +PONG.
func ping(sock string) error {
	c, err := net.DialTimeout("unix", sock, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

// URL is the go-redis URL of the server (unix://<socket>).
func (p *Proc) URL() string { return "unix://" + p.socket }

// Socket is the path of the server's Unix socket.
func (p *Proc) Socket() string { return p.socket }

// Stop terminates the server and waits for it, at most 5 s before killing it.
func (p *Proc) Stop() {
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Kill stops the server at once, without letting it shut down (for crash tests).
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}
