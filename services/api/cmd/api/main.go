// Command api serves the EGS v1 REST API and translates it into NATS
// request/reply to the platform's services.
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

	"github.com/open-egs/egs/services/api/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(1)
	}
}

// run parses flags (environment fallback EGS_API_*), connects to NATS and
// serves until ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("api", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg      service.Config
		natsURL  string
		logLevel slog.Level
	)
	cfg.RegisterFlags(fs)
	fs.StringVar(&natsURL, "nats.url", "nats://127.0.0.1:4222", "NATS server URL.")
	fs.TextVar(&logLevel, "log.level", slog.LevelInfo, "Minimum log level.")
	if err := config.Parse(fs, "EGS_API", args, getenv); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: logLevel})).With(logkey.Service, service.Name)
	nc, err := bus.Connect(natsURL, "egs-"+service.Name, log)
	if err != nil {
		return err
	}
	runErr := service.Run(ctx, service.Deps{Config: cfg, NATS: nc, Log: log})
	if err := nc.Drain(); err != nil {
		log.Warn("nats drain", logkey.Err, err)
	}
	return runErr
}
