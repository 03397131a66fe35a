package redisproc

import (
	"context"
	"os"
	"testing"
)

func TestStartAnswersAndStops(t *testing.T) {
	dir, err := os.MkdirTemp("", "egs-redis-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	p, err := Start(context.Background(), dir)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := ping(p.Socket()); err != nil {
		t.Fatalf("PING after Start: %v", err)
	}
	if got, want := p.URL(), "unix://"+dir+"/redis.sock"; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	p.Stop()
	if err := ping(p.Socket()); err == nil {
		t.Fatal("PING answered after Stop")
	}
	p.Stop() // idempotent
}

func TestStartRefusesLongSocketPath(t *testing.T) {
	long := "/tmp/" + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	if _, err := Start(context.Background(), long); err == nil {
		t.Fatal("Start accepted a socket path over 100 bytes")
	}
}
