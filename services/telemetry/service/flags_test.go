package service_test

import (
	"encoding/json"
	"flag"
	"log/slog"
	"os"
)

func newFlagSet() *flag.FlagSet { return flag.NewFlagSet("test", flag.ContinueOnError) }

func testLog() *slog.Logger {
	if os.Getenv("TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
