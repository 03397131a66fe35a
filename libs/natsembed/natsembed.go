// Package natsembed runs a NATS server with JetStream inside the process, for
// the standalone product and for tests.
package natsembed

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configure the embedded server.
type Options struct {
	// Listen is host:port for clients. Port -1 picks a free port. When the port
	// is taken and FallbackToFree is set, a free port is used instead.
	Listen         string
	FallbackToFree bool
	StoreDir       string // JetStream file storage
	ServerName     string
}

// Start runs the server and waits until it accepts connections.
func Start(o Options) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats listen address %q: %w", o.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("nats listen port %q: %w", portStr, err)
	}
	if port > 0 && o.FallbackToFree {
		l, lerr := net.Listen("tcp", net.JoinHostPort(host, portStr))
		if lerr != nil {
			port = -1
		} else {
			_ = l.Close()
		}
	}
	name := o.ServerName
	if name == "" {
		name = "egs-embedded"
	}
	opts := &server.Options{
		ServerName: name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: 8 << 20,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("nats server not ready within 10s")
	}
	return srv, nil
}
