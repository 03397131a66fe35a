package service_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/testkit/natstest"

	"github.com/open-egs/egs/services/api/service"
)

// TestEventStreamOutlivesServerTimeouts: a portal's event stream stays open
// past the server's read and write timeouts (which bound ordinary requests)
// and still delivers, and an open stream does not hold up shutdown.
func TestEventStreamOutlivesServerTimeouts(t *testing.T) {
	_, nc, _ := natstest.RunJetStream(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const readTimeout = 300 * time.Millisecond
	cfg, err := defaultConfig(t, []string{"-admin.token=adm", "-http.read-timeout=300ms", "-http.write-timeout=600ms",
		"-rpc.timeout=500ms", "-shutdown.timeout=15s"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- service.Run(ctx, service.Deps{Config: cfg, NATS: nc, Log: log, Listener: ln, Ready: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run not ready")
	}

	req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/api/v1/events/stream", nil)
	req.Header.Set("Authorization", "Bearer adm")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("stream = %d", resp.StatusCode)
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()

	// Past both deadlines of an ordinary request, the stream still delivers.
	time.Sleep(3 * readTimeout)
	subject, _ := events.GPRSubject("team-a", "gpr-aaaaaaaa-0001", events.GPRProvisioned)
	ev, _ := bus.NewEvent("gpr-aaaaaaaa-0001.4", "egs/gpr-scheduler", events.EventType("gpr", "provisioned"), "gpr-aaaaaaaa-0001",
		time.Now(), events.GPR{GPRID: "gpr-aaaaaaaa-0001", Workspace: "team-a", Event: events.GPRProvisioned, Seq: 4})
	b, _ := json.Marshal(ev)
	if err := nc.Publish(subject, b); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for got := false; !got; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("stream ended before the event")
			}
			got = strings.HasPrefix(l, "data: ") && strings.Contains(l, `"gprId":"gpr-aaaaaaaa-0001"`)
		case <-deadline:
			t.Fatal("event not delivered")
		}
	}

	// Shutdown with the stream open returns well within its grace period.
	t0 := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run held by the open stream")
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("shutdown took %s with a stream open", d)
	}
}
