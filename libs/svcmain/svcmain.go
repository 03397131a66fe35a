// Package svcmain is the main of every service binary: its flags with the
// environment fallback (libs/config), the JSON logger, the NATS connection,
// the service's run until a signal, and a drain bounded by DrainTimeout. Each
// cmd/<service> describes its service in a Spec and calls Main.
package svcmain

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/config"
	"github.com/open-egs/egs/libs/logkey"
)

// DrainTimeout bounds the wait for the connection to flush at shutdown.
const DrainTimeout = 10 * time.Second

// Spec describes one service binary.
type Spec struct {
	// Name is the service's name: the flag set's, the log attribute's, and
	// the NATS connection's ("egs-<name>").
	Name string
	// EnvPrefix prefixes the environment fallback of every flag, e.g.
	// EGS_TELEMETRY (libs/config).
	EnvPrefix string
	// Register adds the service's own flags and returns the check of their
	// values, run after parsing (nil: none).
	Register func(fs *flag.FlagSet) (validate func() error)
	// Run runs the service until ctx ends.
	Run func(ctx context.Context, env Env) error
}

// Env is what Run gets: the connection, the logger and the process's
// standard output (for what is shown once to an operator, never logged).
type Env struct {
	NATS   *nats.Conn
	Log    *slog.Logger
	Stdout io.Writer
}

// Main runs spec as the process: SIGINT or SIGTERM end it; an error is
// printed and exits 1.
func Main(spec Spec) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, spec, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, spec.Name+":", err)
		os.Exit(1)
	}
}

// Run is Main without the process, for tests: -h prints the usage and
// returns nil; the log goes to stderr.
func Run(ctx context.Context, spec Spec, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(spec.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	natsURL := fs.String("nats.url", "nats://127.0.0.1:4222", "NATS server URL.")
	var level slog.Level
	fs.TextVar(&level, "log.level", slog.LevelInfo, "Minimum log level.")
	var validate func() error
	if spec.Register != nil {
		validate = spec.Register(fs)
	}
	if err := config.Parse(fs, spec.EnvPrefix, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if validate != nil {
		if err := validate(); err != nil {
			return err
		}
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})).With(logkey.Service, spec.Name)

	closed := make(chan struct{})
	nc, err := bus.Connect(*natsURL, "egs-"+spec.Name, log, nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err != nil {
		return err
	}
	runErr := spec.Run(ctx, Env{NATS: nc, Log: log, Stdout: stdout})
	if err := nc.Drain(); err != nil {
		nc.Close()
		return errors.Join(runErr, fmt.Errorf("drain nats: %w", err))
	}
	select {
	case <-closed:
	case <-time.After(DrainTimeout):
		nc.Close()
	}
	return runErr
}
