package service_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/testkit/natstest"
	"github.com/open-egs/egs/services/telemetry/internal/fleet"
	"github.com/open-egs/egs/services/telemetry/internal/samplejson"
	"github.com/open-egs/egs/services/telemetry/service"
)

// benchNodes × 8 GPUs = 10,000 GPUs.
const benchNodes = 1250

// encodeRound builds one batch per node at second sec, in the node agent's
// wire format (a CloudEvents envelope around events.GPUSampleBatch).
func encodeRound(b *testing.B, sec int) []*nats.Msg {
	out := make([]*nats.Msg, 0, benchNodes)
	at := time.Now().Truncate(time.Second).Add(time.Duration(sec) * time.Second)
	for n := range benchNodes {
		node := fmt.Sprintf("node-%d", n)
		batch := events.GPUSampleBatch{Cluster: "bench", Node: node, Boot: "b", Seq: uint64(sec + 1), At: at}
		for i := range 8 {
			u, p, t, c := uint32((n+i+sec)%100), uint32(300_000+i), uint32(55), uint32(1980)
			batch.GPUs = append(batch.GPUs, events.GPUSample{UUID: fmt.Sprintf("GPU-%d-%d", n, i), Index: i,
				Name: "NVIDIA H100 80GB HBM3", GPUUtil: &u, MemUtil: &u, MemUsedBytes: 40 << 30, MemTotalBytes: 80 << 30,
				MemReservedBytes: 480 << 20,
				PowerMilliW:      &p, PowerLimitMW: &p, TempC: &t, SMClockMHz: &c, MemClockMHz: &c})
		}
		subj, _ := events.TelemetryGPUSubject("bench", node)
		id := fmt.Sprintf("bench.%s.b.%d", node, sec+1)
		ev, err := bus.NewEvent(id, "egs/nodeagent", events.EventType("telemetry", "gpu"), node, at, batch)
		if err != nil {
			b.Fatal(err)
		}
		m := nats.NewMsg(subj)
		m.Data, _ = jsonMarshal(ev)
		m.Header.Set(jetstream.MsgIDHeader, id)
		out = append(out, m)
	}
	return out
}

// publishAll publishes msgs asynchronously with at most window in flight.
func publishAll(b *testing.B, js jetstream.JetStream, msgs []*nats.Msg) {
	const window = 2048
	for i := 0; i < len(msgs); i += window {
		end := min(i+window, len(msgs))
		futs := make([]jetstream.PubAckFuture, 0, end-i)
		for _, m := range msgs[i:end] {
			f, err := js.PublishMsgAsync(m, jetstream.WithStallWait(10*time.Second))
			if err != nil {
				b.Fatal(err)
			}
			futs = append(futs, f)
		}
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkIngest records, in one run: the raw async publish rate of the
// embedded JetStream server (the same messages into a stream configured as
// EGS_TELEMETRY, nobody consuming), the end-to-end ingest rate (publish →
// telemetry service state and rollups, every sample applied and its effects
// stored), both in
// GPU samples/s, their ratio, and the heap that the state of 10,000 GPUs
// holds. Each iteration measures raw and then ingest with the same
// messages, so that a machine whose speed varies affects both alike.
//
//	go test -run '^$' -bench BenchmarkIngest -benchtime 2x ./service
func BenchmarkIngest(b *testing.B) {
	const rounds = 20 // seconds of samples per iteration
	// First, while no embedded server runs whose caches come and go.
	heap := stateHeap(b)
	var raw, e2e time.Duration
	for it := 0; it < b.N; it++ {
		b.StopTimer()
		srv, _, js := natstest.RunJetStream(b)
		msgs := make([][]*nats.Msg, rounds)
		for r := range rounds {
			msgs[r] = encodeRound(b, it*rounds+r)
		}
		rawStream := service.Stream(time.Hour)
		rawStream.Name = "RAW"
		if _, err := js.CreateStream(context.Background(), rawStream); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		for r := range rounds {
			publishAll(b, js, msgs[r])
		}
		raw += time.Since(t0)
		b.StopTimer()
		if err := js.DeleteStream(context.Background(), "RAW"); err != nil {
			b.Fatal(err)
		}
		if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: events.StreamGPR,
			Subjects: []string{events.SubjectGPRAll}}); err != nil {
			b.Fatal(err)
		}
		// The service has its own connection, as it has in production.
		snc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan struct{})
		done := make(chan error, 1)
		want := uint64(rounds * benchNodes * 8)
		settled := make(chan struct{})
		var once sync.Once
		go func() {
			done <- service.Run(ctx, service.Deps{Config: config(), NATS: snc, Ready: func() { close(ready) },
				OnSettled: func(n uint64) {
					if n >= want {
						once.Do(func() { close(settled) })
					}
				}})
		}()
		<-ready
		b.StartTimer()
		t0 = time.Now()
		for r := range rounds {
			publishAll(b, js, msgs[r])
		}
		select { // every sample applied and its effects stored
		case <-settled:
		case <-time.After(5 * time.Minute):
			b.Fatal("samples not settled within 5 minutes")
		}
		e2e += time.Since(t0)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		snc.Close()
	}
	samples := float64(b.N * rounds * benchNodes * 8)
	b.ReportMetric(samples/raw.Seconds(), "raw-gpu-samples/s")
	b.ReportMetric(samples/e2e.Seconds(), "ingest-gpu-samples/s")
	b.ReportMetric(raw.Seconds()/e2e.Seconds()*100, "ingest-%-of-raw")
	b.ReportMetric(heap, "heap-MiB/10k-GPUs")
}

// stateHeap is the heap in use (MiB, after a forced GC) that the telemetry
// service's state of 10,000 GPUs holds: the latest sample of each, their
// open rollup windows and the decoder's interned strings, loaded from two
// rounds of the wire messages the way Ingest loads them. It leaves out the
// NATS server and the benchmark's own messages, which share the process.
func stateHeap(b *testing.B) float64 {
	msgs := [][]*nats.Msg{encodeRound(b, 0), encodeRound(b, 1)}
	var batch events.GPUSampleBatch
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f := fleet.New(fleet.Config{Default: fleet.Thresholds{TempC: 87}, Hysteresis: 0.05, Rollup: fleet.Resolutions[0].Size})
	dec := samplejson.NewDecoder()
	for _, round := range msgs {
		for _, m := range round {
			if err := dec.Decode(m.Data, &batch); err != nil {
				b.Fatal(err)
			}
			f.Ingest(&batch)
		}
	}
	batch = events.GPUSampleBatch{}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(msgs)
	runtime.KeepAlive(f)
	runtime.KeepAlive(dec)
	held := float64(after.HeapAlloc) - float64(before.HeapAlloc)
	return max(held, 0) / (1 << 20) * 10000 / (benchNodes * 8)
}
