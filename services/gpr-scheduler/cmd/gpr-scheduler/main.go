// Command gpr-scheduler runs the GPR scheduler against a NATS server.
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

	"github.com/open-egs/egs/services/gpr-scheduler/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gpr-scheduler:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("gpr-scheduler", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg service.Config
	cfg.RegisterFlags(fs)
	natsURL := fs.String("nats.url", "nats://127.0.0.1:4222", "NATS server URL.")
	var level slog.Level
	fs.TextVar(&level, "log.level", slog.LevelInfo, "Minimum log level.")
	if err := config.Parse(fs, "EGS_GPR_SCHEDULER", args, getenv); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})).With("service", service.Name)
	nc, err := bus.Connect(*natsURL, service.Name, log)
	if err != nil {
		return err
	}
	defer func() { _ = nc.Drain() }()
	return service.Run(ctx, service.Deps{Config: cfg, NATS: nc, Log: log})
}
