// Command provisioner runs the provisioner service: GPU inventory from
// Kubernetes and hand-over of nodes to workspaces. Flags fall back to
// EGS_PROVISIONER_<FLAG> in the environment (-nats.url ⇐ EGS_PROVISIONER_NATS_URL).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/config"
	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/services/provisioner/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "provisioner:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("provisioner", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg      service.Config
		natsURL  string
		logLevel slog.Level
	)
	cfg.RegisterFlags(fs)
	fs.StringVar(&natsURL, "nats.url", "nats://127.0.0.1:4222", "NATS server URL.")
	fs.TextVar(&logLevel, "log.level", slog.LevelInfo, "Minimum log level.")
	if err := config.Parse(fs, "EGS_PROVISIONER", args, getenv); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: logLevel})).With(logkey.Service, service.Name)
	nc, err := bus.Connect(natsURL, service.Name, log)
	if err != nil {
		return err
	}
	runErr := service.Run(ctx, service.Deps{Config: cfg, NATS: nc, Log: log})
	if err := nc.Drain(); err != nil && runErr == nil {
		return fmt.Errorf("drain nats: %w", err)
	}
	return runErr
}
