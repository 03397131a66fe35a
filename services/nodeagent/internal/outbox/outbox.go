// Package outbox buffers the node agent's sample batches and publishes them
// to JetStream with bounded in-flight asynchronous publishes. While the bus
// is unreachable it keeps the newest batches up to its capacity, dropping
// (and counting) the oldest, and replays them in order on reconnect; message
// ids make a replay of an already stored batch harmless. Each message
// carries the drop count at the time it is sent (header egs-dropped).
package outbox

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/events"
)

// Item is one message to publish; ID is its Nats-Msg-Id.
type Item struct {
	ID  string
	Msg *nats.Msg
}

// Outbox is a bounded FIFO of messages and their publisher. Push is safe for
// concurrent use; Run is called once.
type Outbox struct {
	js          jetstream.JetStream
	capacity    int
	maxInflight int
	log         *slog.Logger

	mu      sync.Mutex
	items   []Item // oldest first
	dropped uint64
	sent    uint64
	wake    chan struct{}
}

// New returns an outbox of capacity messages that publishes at most
// maxInflight at a time.
func New(js jetstream.JetStream, capacity, maxInflight int, log *slog.Logger) *Outbox {
	return &Outbox{js: js, capacity: max(capacity, 1), maxInflight: max(maxInflight, 1), log: log,
		wake: make(chan struct{}, 1)}
}

// Push queues it, dropping the oldest message when the outbox is full.
func (o *Outbox) Push(it Item) {
	o.mu.Lock()
	if len(o.items) >= o.capacity {
		o.items = o.items[1:]
		o.dropped++
	}
	o.items = append(o.items, it)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Stats returns the messages waiting, dropped and acknowledged so far.
func (o *Outbox) Stats() (queued int, dropped, sent uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.items), o.dropped, o.sent
}

// Dropped is the number of messages dropped because the outbox was full.
func (o *Outbox) Dropped() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.dropped
}

func (o *Outbox) peek() []Item {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := min(len(o.items), o.maxInflight)
	return append([]Item(nil), o.items[:n]...)
}

// remove takes the acknowledged messages out of the queue. Messages may
// have been dropped from the front meanwhile, so they are matched by id.
func (o *Outbox) remove(acked map[string]bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	kept := o.items[:0]
	for _, it := range o.items {
		if !acked[it.ID] {
			kept = append(kept, it)
		}
	}
	clear(o.items[len(kept):])
	o.items = kept
	o.sent += uint64(len(acked))
}

// Run publishes until ctx ends, then tries once more, within flushTimeout,
// to publish what is queued. It returns nil.
func (o *Outbox) Run(ctx context.Context, flushTimeout time.Duration) error {
	backoff := 100 * time.Millisecond
	for {
		if err := o.publishAll(ctx); err != nil && ctx.Err() == nil {
			o.log.Debug("publish samples; will retry", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
			err := o.publishAll(fctx)
			cancel()
			if q, _, _ := o.Stats(); q > 0 {
				o.log.Warn("samples left unpublished at shutdown", "count", q, "err", err)
			}
			return nil
		case <-o.wake:
		}
	}
}

// publishAll publishes queued messages, maxInflight at a time, until the
// queue is empty or a publish fails.
func (o *Outbox) publishAll(ctx context.Context) error {
	for {
		batch := o.peek()
		if len(batch) == 0 {
			return nil
		}
		acked := make(map[string]bool, len(batch))
		futs := make([]jetstream.PubAckFuture, 0, len(batch))
		var perr error
		dropped := strconv.FormatUint(o.Dropped(), 10)
		for _, it := range batch {
			if it.Msg.Header == nil {
				it.Msg.Header = nats.Header{}
			}
			it.Msg.Header.Set(events.HeaderTelemetryDropped, dropped)
			f, err := o.js.PublishMsgAsync(it.Msg, jetstream.WithMsgID(it.ID), jetstream.WithStallWait(5*time.Second))
			if err != nil {
				perr = err
				break
			}
			futs = append(futs, f)
		}
		for i, f := range futs {
			select {
			case <-f.Ok():
				acked[batch[i].ID] = true
			case err := <-f.Err():
				perr = errors.Join(perr, err)
			case <-ctx.Done():
				o.remove(acked)
				return ctx.Err()
			}
		}
		o.remove(acked)
		if perr != nil {
			return perr
		}
	}
}
