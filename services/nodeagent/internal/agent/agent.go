// Package agent is the node agent's loop: sample every GPU once per
// interval and queue the batch for publishing.
package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/services/nodeagent/internal/outbox"
)

// Sampler reads every GPU of the node once.
type Sampler interface {
	Sample() []events.GPUSample
}

// Agent samples one node. Tick is not safe for concurrent use.
type Agent struct {
	cluster, node string
	subject       string
	boot          string
	seq           uint64
	sampler       Sampler
	out           *outbox.Outbox
	log           *slog.Logger
}

// New returns an agent of node in cluster that queues its batches on out.
func New(cluster, node string, s Sampler, out *outbox.Outbox, log *slog.Logger) (*Agent, error) {
	subj, err := events.TelemetryGPUSubject(cluster, node)
	if err != nil {
		return nil, fmt.Errorf("node agent %s/%s: %w", cluster, node, err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &Agent{cluster: cluster, node: node, subject: subj, boot: hex.EncodeToString(b[:]), sampler: s, out: out, log: log}, nil
}

// Tick samples the GPUs and queues one batch stamped at.
func (a *Agent) Tick(at time.Time) error {
	a.seq++
	batch := events.GPUSampleBatch{Cluster: a.cluster, Node: a.node, Boot: a.boot, Seq: a.seq, At: at.UTC(),
		GPUs: a.sampler.Sample(), Dropped: a.out.Dropped()}
	id := a.cluster + "." + events.NodeToken(a.node) + "." + a.boot + "." + strconv.FormatUint(a.seq, 10)
	msg, err := Message(a.subject, id, batch)
	if err != nil {
		return err
	}
	a.out.Push(outbox.Item{ID: id, Msg: msg})
	return nil
}

// Message encodes a batch as an event message on subject with event id id.
func Message(subject, id string, batch events.GPUSampleBatch) (*nats.Msg, error) {
	ev, err := bus.NewEvent(id, "egs/nodeagent", events.EventType("telemetry", "gpu"), batch.Node, batch.At, batch)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode sample batch %s: %w", id, err)
	}
	msg := nats.NewMsg(subject)
	msg.Data = body
	msg.Header.Set(bus.HeaderType, ev.Type)
	msg.Header.Set(bus.HeaderID, id)
	msg.Header.Set(bus.HeaderSubject, ev.Subject)
	return msg, nil
}

// Run ticks every interval until ctx ends; now is the clock.
func (a *Agent) Run(ctx context.Context, interval time.Duration, now func() time.Time) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := a.Tick(now()); err != nil {
			a.log.Warn("sample", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
