package outbox_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/testkit/natstest"
	"github.com/open-egs/egs/services/nodeagent/internal/outbox"
)

func item(i int) outbox.Item {
	m := nats.NewMsg("egs.telemetry.v1.gpu.c1.n1")
	m.Data = []byte(fmt.Sprint(i))
	return outbox.Item{ID: fmt.Sprint("id-", i), Msg: m}
}

// While nothing is published (the bus unreachable) the outbox keeps the
// newest messages up to its capacity, then replays them in order.
func TestBufferThenReplay(t *testing.T) {
	_, nc, js := natstest.RunJetStream(t)
	pjs, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	o := outbox.New(pjs, 5, 2, slog.New(slog.DiscardHandler))
	for i := 1; i <= 8; i++ {
		o.Push(item(i))
	}
	if q, dropped, _ := o.Stats(); q != 5 || dropped != 3 {
		t.Fatalf("queued %d dropped %d, want 5 and 3", q, dropped)
	}
	s, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "T", Subjects: []string{"egs.telemetry.v1.>"},
		Duplicates: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx, time.Second) }()
	drained := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if q, _, _ := o.Stats(); q == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("outbox not drained after the stream appeared")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	drained()
	o.Push(item(8)) // a duplicate id: stored once
	drained()
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 5 {
		t.Errorf("stored %d messages, want 5 (4..8)", info.State.Msgs)
	}
	m, err := s.GetMsg(context.Background(), 1)
	if err != nil || string(m.Data) != "4" {
		t.Errorf("first stored = %q, %v; want the oldest kept, 4", m.Data, err)
	}
	// Each carries the drops up to its sending, the batches made before
	// the drops included.
	if got := m.Header.Get(events.HeaderTelemetryDropped); got != "3" {
		t.Errorf("header %s = %q, want 3", events.HeaderTelemetryDropped, got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}
