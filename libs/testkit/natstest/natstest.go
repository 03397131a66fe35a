// Package natstest runs a real NATS server with JetStream in the test process,
// on a random port with storage in the test's temporary directory.
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// RunServer starts a JetStream server for t and shuts it down at cleanup.
func RunServer(t testing.TB) *server.Server {
	t.Helper()
	return RunServerIn(t, t.TempDir())
}

// RunServerIn starts a JetStream server storing in dir (reuse dir to restart
// a server with its data).
func RunServerIn(t testing.TB, dir string) *server.Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats server not ready")
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// Connect opens a connection to srv, closed at cleanup.
func Connect(t testing.TB, srv *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatalf("connect to test server: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// RunJetStream starts a server and connects to it.
func RunJetStream(t testing.TB) (*server.Server, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv := RunServer(t)
	nc, js := Connect(t, srv)
	return srv, nc, js
}
