// Command telemetry runs the telemetry service: GPU sample ingest, latest state,
// rollups, idle and threshold detection, and /metrics under dcgm-exporter names.
package main

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
	"github.com/open-egs/egs/services/telemetry/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "telemetry:", err)
		os.Exit(1)
	}
}

// drainTimeout bounds the wait for the connection to flush at shutdown.
const drainTimeout = 10 * time.Second

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("telemetry", flag.ContinueOnError)
	fs.SetOutput(stderr)
	natsURL := fs.String("nats.url", "nats://127.0.0.1:4222", "NATS server URL.")
	var level slog.Level
	fs.TextVar(&level, "log.level", slog.LevelInfo, "Minimum log level.")
	var cfg service.Config
	cfg.RegisterFlags(fs)
	if err := config.Parse(fs, "EGS_TELEMETRY", args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})).With(logkey.Service, service.Name)

	closed := make(chan struct{})
	nc, err := bus.Connect(*natsURL, "egs-"+service.Name, log, nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err != nil {
		return err
	}
	runErr := service.Run(ctx, service.Deps{Config: cfg, NATS: nc, Log: log})
	if err := nc.Drain(); err != nil {
		nc.Close()
		return errors.Join(runErr, fmt.Errorf("drain nats: %w", err))
	}
	select {
	case <-closed:
	case <-time.After(drainTimeout):
		nc.Close()
	}
	return runErr
}
