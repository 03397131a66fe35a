package service_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/services/nodeagent/service"
)

func startServer(t *testing.T, dir string, port int) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	return srv
}

// The agent is cut off from the bus (its NATS server goes away) for 30
// sampling intervals: it keeps sampling into its buffer and, once the server
// is back, every batch reaches the stream, in order, each once.
func TestCutOffFromTheBusLosesNothing(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, -1)
	addr := srv.ClientURL()
	nc, err := nats.Connect(addr, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	telemetryStream(t, js)
	const interval = 50 * time.Millisecond
	cfg := service.Config{Cluster: "worker-1", Node: "n1", Interval: interval, Buffer: 100, MaxInflight: 4,
		FlushTimeout: time.Second, Simulate: true, SimProduct: "NVIDIA-H100-80GB-HBM3", SimGPUs: 8, SimMemoryMiB: 81559}
	runUntilCancel(t, func(ctx context.Context, ready func()) error {
		return service.Run(ctx, service.Deps{Config: cfg, NATS: nc, Ready: ready})
	})
	time.Sleep(5 * interval)

	tcpPort := srv.Addr().(*net.TCPAddr).Port
	srv.Shutdown()
	srv.WaitForShutdown()
	time.Sleep(30 * interval) // cut off: ~30 batches go to the buffer
	srv = startServer(t, dir, tcpPort)
	defer srv.Shutdown()

	// After the cut-off at least 35 batches exist; all of seq 1..n arrive, in order, once.
	s, err := js.Stream(context.Background(), events.StreamTelemetry)
	deadline := time.Now().Add(20 * time.Second)
	for err != nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		s, err = js.Stream(context.Background(), events.StreamTelemetry)
	}
	if err != nil {
		t.Fatal(err)
	}
	subj, _ := events.TelemetryGPUSubject("worker-1", "n1")
	got := nextBatches(t, s, subj, 40)
	for i, b := range got {
		if b.Seq != uint64(i+1) {
			t.Fatalf("batch %d has seq %d: a batch was lost or duplicated around the cut-off", i+1, b.Seq)
		}
		if b.Dropped != 0 {
			t.Fatalf("batch %d reports %d dropped within the buffer bound", i+1, b.Dropped)
		}
	}
}
