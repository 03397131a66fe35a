package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Header names set on every published event.
const (
	HeaderType    = "ce-type"
	HeaderID      = "ce-id"
	HeaderSubject = "ce-subject"
)

// Publisher publishes events to JetStream with de-duplication by event id.
// It is safe for concurrent use.
type Publisher struct {
	js jetstream.JetStream
}

// NewPublisher returns a Publisher on js.
func NewPublisher(js jetstream.JetStream) *Publisher { return &Publisher{js: js} }

// Publish sends ev on subject and waits for the stream's acknowledgement. A
// duplicate (same id within the stream's window) is acknowledged without being
// stored again, so retrying a publish is always safe.
func (p *Publisher) Publish(ctx context.Context, subject string, ev Event) error {
	msg, err := eventMsg(subject, ev)
	if err != nil {
		return err
	}
	if _, err := p.js.PublishMsg(ctx, msg, jetstream.WithMsgID(ev.ID)); err != nil {
		return fmt.Errorf("publish %s %s: %w", subject, ev.ID, err)
	}
	return nil
}

func eventMsg(subject string, ev Event) (*nats.Msg, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", ev.ID, err)
	}
	msg := nats.NewMsg(subject)
	msg.Data = body
	msg.Header.Set(HeaderType, ev.Type)
	msg.Header.Set(HeaderID, ev.ID)
	msg.Header.Set(HeaderSubject, ev.Subject)
	return msg, nil
}

// ParseEvent decodes the envelope of a message published by Publisher.
func ParseEvent(data []byte) (Event, error) {
	var ev Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return Event{}, fmt.Errorf("decode event envelope: %w", err)
	}
	if ev.ID == "" || ev.Type == "" {
		return Event{}, fmt.Errorf("decode event envelope: id and type are required")
	}
	return ev, nil
}

// Outgoing is one event to publish on one subject.
type Outgoing struct {
	Subject string
	Event   Event
}

// batchWindow bounds the acknowledgements awaited at once by PublishBatch.
const batchWindow = 256

// PublishBatch publishes every event in order without waiting for each
// acknowledgement, then waits for all of them (in windows of 256). It returns
// the first failure; events before a failure may or may not be stored, so the
// caller retries the whole batch (the ids make that safe).
func (p *Publisher) PublishBatch(ctx context.Context, out []Outgoing) error {
	for start := 0; start < len(out); start += batchWindow {
		end := min(start+batchWindow, len(out))
		futs := make([]jetstream.PubAckFuture, 0, end-start)
		for _, o := range out[start:end] {
			msg, err := eventMsg(o.Subject, o.Event)
			if err != nil {
				return err
			}
			f, err := p.js.PublishMsgAsync(msg, jetstream.WithMsgID(o.Event.ID), jetstream.WithStallWait(5*time.Second))
			if err != nil {
				return fmt.Errorf("publish %s %s: %w", o.Subject, o.Event.ID, err)
			}
			futs = append(futs, f)
		}
		for i, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return fmt.Errorf("publish %s %s: %w", out[start+i].Subject, out[start+i].Event.ID, err)
			case <-ctx.Done():
				return fmt.Errorf("publish batch: %w", ctx.Err())
			}
		}
	}
	return nil
}
