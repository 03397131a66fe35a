package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/testkit/natstest"
	"github.com/open-egs/egs/services/telemetry/service"
)

// counter reads one of the service's counters from its metrics.
func counter(t *testing.T, nc *nats.Conn, name string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := rpc.Call[events.TelemetryMetrics](ctx, nc, events.RPCTelemetryMetrics, events.TelemetryQuery{Caller: admin})
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(m.Text) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in the metrics", name)
	return 0
}

// rollupSamples is the sample count of GPU-0's 10 s window starting at
// second start.
func rollupSamples(t *testing.T, nc *nats.Conn, node string, start int) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := rpc.Call[events.TelemetrySeries](ctx, nc, events.RPCTelemetrySeries, events.TelemetryQuery{Caller: admin,
		Res: "10s", Cluster: "c1", Node: node, UUID: "GPU-0", From: t0, To: t0.Add(5 * time.Minute)})
	if err != nil {
		return -1
	}
	for _, p := range s.Points {
		if p.Start.Equal(t0.Add(time.Duration(start) * time.Second)) {
			return p.GPUs[0].Samples
		}
	}
	return -1
}

// A batch the subscription never saw (stored through a source, which
// publishes nothing) is read from the stream when the node's next batch
// shows the gap, and applied before it; a jump the agent's drop count
// explains is no gap, and a batch missing from the stream too is counted.
func TestGapIsReadFromTheStream(t *testing.T) {
	_, nc, js := natstest.RunJetStream(t)
	pub := scheduler(t, nc, js, time.Hour)
	var settled atomic.Uint64
	startWith(t, nc, func(d *service.Deps) { d.OnSettled = func(n uint64) { settled.Store(n) } })

	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "FEED", Subjects: []string{"feed.>"}}); err != nil {
		t.Fatal(err)
	}
	cfg := service.Stream(time.Hour)
	cfg.Sources = []*jetstream.StreamSource{{Name: "FEED", SubjectTransforms: []jetstream.SubjectTransformConfig{
		{Source: "feed.>", Destination: "egs.telemetry.v1.gpu.>"}}}}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	publish := func(o ...bus.Outgoing) {
		t.Helper()
		if err := pub.PublishBatch(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	for s := range 5 {
		publish(sampleBatch("n1", s, 50, 0))
	}
	// Second 5 reaches the stream only.
	quiet := sampleBatch("n1", 5, 50, 0)
	quiet.Subject = "feed.c1.n1"
	publish(quiet)
	subj, _ := events.TelemetryGPUSubject("c1", "n1")
	eventually(t, "the quiet batch stored", func() bool {
		st, err := js.Stream(ctx, events.StreamTelemetry)
		if err != nil {
			return false
		}
		m, err := st.GetLastMsgForSubject(ctx, subj)
		return err == nil && strings.Contains(string(m.Data), `"seq":6`)
	})
	for s := 6; s <= 10; s++ {
		publish(sampleBatch("n1", s, 50, 0))
	}
	eventually(t, "window 0-10 s with every second", func() bool { return rollupSamples(t, nc, "n1", 0) == 10 },
		func() string { return fmt.Sprintf("%d samples", rollupSamples(t, nc, "n1", 0)) })
	if n := settled.Load(); n != 22 { // 11 batches of 2 GPUs, each once
		t.Errorf("settled %d samples, want 22", n)
	}
	if m := counter(t, nc, "egs_telemetry_sample_batches_missed_total"); m != 0 {
		t.Errorf("missed = %d, want 0", m)
	}

	// The agent dropped second 11: no gap, nothing missed. The batch was made
	// before the drop (its body says 0); the header, set when it was sent, says 1.
	dropped := sampleBatch("n1", 12, 50, 0)
	body, err := json.Marshal(dropped.Event)
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(dropped.Subject)
	msg.Data = body
	msg.Header.Set(events.HeaderTelemetryDropped, "1")
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(dropped.Event.ID)); err != nil {
		t.Fatal(err)
	}
	// Second 13 was lost on the way and is not in the stream either.
	publish(sampleBatch("n1", 14, 50, 1))
	eventually(t, "the batch after the loss", func() bool { return settled.Load() == 26 })
	if m := counter(t, nc, "egs_telemetry_sample_batches_missed_total"); m != 1 {
		t.Errorf("missed = %d, want 1", m)
	}

	// The agent restarts (boot c); its first two batches reach the stream
	// only: the third shows them missing, and they are read before it.
	for seq := range 2 {
		quiet := bootBatch("n1", "c", 15+seq, uint64(seq+1), 50, 0)
		quiet.Subject = "feed.c1.n1"
		publish(quiet)
	}
	eventually(t, "the new boot's quiet batches stored", func() bool {
		st, err := js.Stream(ctx, events.StreamTelemetry)
		if err != nil {
			return false
		}
		m, err := st.GetLastMsgForSubject(ctx, subj)
		return err == nil && strings.Contains(string(m.Data), `"boot":"c","seq":2`)
	})
	publish(bootBatch("n1", "c", 17, 3, 50, 0))
	eventually(t, "the new boot's batches", func() bool { return settled.Load() == 32 },
		func() string { return fmt.Sprintf("%d samples settled", settled.Load()) })
	if m := counter(t, nc, "egs_telemetry_sample_batches_missed_total"); m != 1 {
		t.Errorf("missed = %d, want still 1", m)
	}
	if n := counter(t, nc, "egs_telemetry_gpu_samples_total"); n != 32 {
		t.Errorf("samples ingested = %d, want 32", n)
	}
}

// The first start of this version after one that read samples through the
// durable consumer telemetry-samples starts from that consumer's ack floor,
// and deletes the consumer.
func TestLegacyConsumerSeedsTheCheckpoint(t *testing.T) {
	_, nc, js := natstest.RunJetStream(t)
	pub := scheduler(t, nc, js, time.Hour)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, service.Stream(time.Hour)); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, events.StreamTelemetry, jetstream.ConsumerConfig{Durable: "telemetry-samples",
		FilterSubject: events.SubjectTelemetryGPUAll, AckPolicy: jetstream.AckAllPolicy})
	if err != nil {
		t.Fatal(err)
	}
	for s := range 10 {
		if err := pub.PublishBatch(ctx, []bus.Outgoing{sampleBatch("n1", s, 50, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	// The old version applied the first five.
	batch, err := cons.Fetch(5)
	if err != nil {
		t.Fatal(err)
	}
	var last jetstream.Msg
	for m := range batch.Messages() {
		last = m
	}
	if err := last.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	var settled atomic.Uint64
	startWith(t, nc, func(d *service.Deps) {
		d.Config.Replay = 0
		d.OnSettled = func(n uint64) { settled.Store(n) }
	})
	// From the fifth (stored at the ack floor's time) on: six batches.
	eventually(t, "the batches after the ack floor", func() bool { return settled.Load() == 12 },
		func() string { return fmt.Sprintf("%d samples settled", settled.Load()) })
	time.Sleep(300 * time.Millisecond)
	if n := counter(t, nc, "egs_telemetry_gpu_samples_total"); n != 12 {
		t.Errorf("samples ingested = %d, want 12", n)
	}
	if _, err := js.Consumer(ctx, events.StreamTelemetry, "telemetry-samples"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("old consumer: %v, want it deleted", err)
	}
}

// A subscription that drops batches (its buffer holds one) has them read
// from the stream: every batch is applied exactly once.
func TestDroppedBatchesAreReadFromTheStream(t *testing.T) {
	_, nc, js := natstest.RunJetStream(t)
	pub := scheduler(t, nc, js, time.Hour)
	var settled atomic.Uint64
	startWith(t, nc, func(d *service.Deps) {
		d.Config.Fetch, d.Config.Buffer = 1, 1
		d.OnSettled = func(n uint64) { settled.Store(n) }
	})
	const nodes, seconds = 20, 50
	var out []bus.Outgoing
	for s := range seconds {
		for n := range nodes {
			out = append(out, sampleBatch(fmt.Sprintf("n%d", n), s, 50, 0))
		}
	}
	if err := pub.PublishBatch(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	settledOnceEach(t, nc, &settled, nodes*seconds*2, 10*time.Second)
	for n := range 3 {
		if got := rollupSamples(t, nc, fmt.Sprintf("n%d", n), 0); got != 10 {
			t.Errorf("n%d window 0-10 s has %d samples, want 10", n, got)
		}
	}
}

// The acceptance's outage, in real time: the agent publishes a batch a
// second while the service runs for 10 s, is down for 30 s, and runs again.
// Every 10 s window, those of the outage included, ends up with its ten
// samples: nothing published while the service was down is lost, and
// nothing read twice (the replay before the checkpoint) counts twice.
func TestDownThirtySecondsLosesNothing(t *testing.T) {
	t.Parallel()
	_, nc, js := natstest.RunJetStream(t)
	pub := scheduler(t, nc, js, time.Hour)
	ctx := context.Background()
	real := func(d *service.Deps) { d.Now = time.Now }
	stop := startWith(t, nc, real)
	// Samples are taken on the clock, as an agent takes them, from the next
	// window's start on (a node whose samples lag the clock has its windows
	// closed -rollups.flush-grace after their end).
	base := time.Now().UTC().Truncate(10 * time.Second).Add(10 * time.Second)
	time.Sleep(time.Until(base))
	const seconds = 51 // windows 0..40 close with the batch of second 50
	for s := range seconds {
		switch s {
		case 10:
			stop()
		case 40:
			startWith(t, nc, real)
		}
		at := base.Add(time.Duration(s) * time.Second)
		time.Sleep(time.Until(at))
		if err := pub.PublishBatch(ctx, []bus.Outgoing{atBatch("n1", "b", at, uint64(s+1), 50, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	windows := func() map[time.Time]int {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		series, err := rpc.Call[events.TelemetrySeries](sctx, nc, events.RPCTelemetrySeries, events.TelemetryQuery{Caller: admin,
			Res: "10s", Cluster: "c1", Node: "n1", UUID: "GPU-0", From: base.Add(-time.Minute), To: time.Now().Add(time.Minute)})
		if err != nil {
			return nil
		}
		out := map[time.Time]int{}
		for _, p := range series.Points {
			out[p.Start.UTC()] = p.GPUs[0].Samples
		}
		return out
	}
	full := func(w map[time.Time]int) bool {
		for i := range 5 {
			if w[base.Add(time.Duration(10*i)*time.Second)] != 10 {
				return false
			}
		}
		return true
	}
	eventually(t, "five windows of ten samples", func() bool { return full(windows()) },
		func() string { return fmt.Sprintf("windows: %v", windows()) })
}

// A service that falls behind (storing effects is slow, so its buffer fills
// and drops) reads from when its buffer was last empty: the batches that
// waited in the buffer and those it dropped are all applied, once.
func TestBehindServiceLosesNothing(t *testing.T) {
	_, nc, js := natstest.RunJetStream(t)
	pub := scheduler(t, nc, js, time.Hour)
	var settled atomic.Uint64
	startWith(t, nc, func(d *service.Deps) {
		d.Config.Fetch, d.Config.Buffer = 1, 20
		// A margin shorter than the backlog's age, as a backlog of minutes
		// is against the default 10 s.
		d.Config.ResumeMargin = 100 * time.Millisecond
		d.OnSettled = func(n uint64) {
			settled.Store(n)
			time.Sleep(5 * time.Millisecond) // slow storage of effects
		}
	})
	const batches = 400
	var out []bus.Outgoing
	for s := range batches {
		out = append(out, sampleBatch("n1", s, 50, 0))
	}
	if err := pub.PublishBatch(context.Background(), out); err != nil {
		t.Fatal(err)
	}
	settledOnceEach(t, nc, &settled, batches*2, 60*time.Second)
}

// settledOnceEach checks, once settled reaches want (within the time
// given), that every sample was applied exactly once, that the stream was
// read (else the subscription dropped nothing and the test proved nothing)
// and that no batch was missed.
func settledOnceEach(t *testing.T, nc *nats.Conn, settled *atomic.Uint64, want uint64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for settled.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d samples settled after %s", settled.Load(), want, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // anything applied twice would show now
	if n := settled.Load(); n != want {
		t.Errorf("settled %d samples, want %d", n, want)
	}
	if n := counter(t, nc, "egs_telemetry_gpu_samples_total"); n != want {
		t.Errorf("samples ingested = %d, want %d (each once)", n, want)
	}
	if r := counter(t, nc, "egs_telemetry_sample_stream_reads_total"); r == 0 {
		t.Error("the stream was never read: the subscription dropped nothing, so the test proved nothing")
	}
	if m := counter(t, nc, "egs_telemetry_sample_batches_missed_total"); m != 0 {
		t.Errorf("missed = %d, want 0", m)
	}
}
