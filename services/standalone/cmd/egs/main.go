// Command egs runs the whole Elastic GPU Service in one process (see package
// standalone): `make run`.
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

	"github.com/open-egs/egs/libs/config"

	"github.com/open-egs/egs/services/standalone"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "egs:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("egs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg standalone.Config
	cfg.RegisterFlags(fs)
	var level slog.Level
	fs.TextVar(&level, "log.level", slog.LevelInfo, "Minimum log level.")
	if err := config.Parse(fs, "EGS", args, getenv); err != nil {
		return err
	}
	if cfg.RedisURL == "" {
		cfg.RedisURL = getenv("REDIS_URL")
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	log.Info("starting", "config", cfg)
	return standalone.Run(ctx, cfg, standalone.Deps{Log: log, Stdout: stdout})
}
