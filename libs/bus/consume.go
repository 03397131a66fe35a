package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/events"
)

// Handler handles one event. Returning nil acks the message; an error made with
// Permanent terminates it (and dead-letters it); any other error asks for a
// redelivery after a backoff, until the consumer's MaxDeliver is reached, when
// the message is dead-lettered too.
type Handler func(ctx context.Context, ev Event, msg jetstream.Msg) error

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was made with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// ConsumerSpec declares a durable pull consumer with explicit acks.
type ConsumerSpec struct {
	Stream         string
	Durable        string
	FilterSubjects []string
	MaxDeliver     int             // default 10
	AckWait        time.Duration   // default 30s; keep above the handler timeout
	Backoff        []time.Duration // redelivery delays by attempt; default 100ms, 500ms, 2s, 5s
	HandlerTimeout time.Duration   // per message; default 10s
}

func (c ConsumerSpec) withDefaults() ConsumerSpec {
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 10
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if len(c.Backoff) == 0 {
		c.Backoff = []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second, 5 * time.Second}
	}
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = 10 * time.Second
	}
	return c
}

// EnsureConsumer creates or updates the durable consumer of spec.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, spec ConsumerSpec) (jetstream.Consumer, error) {
	spec = spec.withDefaults()
	cfg := jetstream.ConsumerConfig{
		Durable:       spec.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       spec.AckWait,
		MaxDeliver:    spec.MaxDeliver,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 1000,
	}
	if len(spec.FilterSubjects) == 1 {
		cfg.FilterSubject = spec.FilterSubjects[0]
	} else {
		cfg.FilterSubjects = spec.FilterSubjects
	}
	c, err := js.CreateOrUpdateConsumer(ctx, spec.Stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("ensure consumer %s/%s: %w", spec.Stream, spec.Durable, err)
	}
	return c, nil
}

// EnsureDeadLetterStream declares the stream that keeps dead letters (7 days).
func EnsureDeadLetterStream(ctx context.Context, js jetstream.JetStream) error {
	_, err := EnsureStream(ctx, js, StreamDefaults(jetstream.StreamConfig{
		Name:     events.StreamDeadLetter,
		Subjects: []string{events.SubjectDeadLetterAll},
		Storage:  jetstream.FileStorage,
		MaxAge:   7 * 24 * time.Hour,
	}))
	return err
}

// Consume delivers the messages of cons to h one at a time, in stream order,
// until ctx ends; then it drains (the message in hand finishes) and returns
// nil. Messages that fail permanently, or too often, are copied to
// egs.dlq.v1.<stream>.<durable> with the reason in headers and terminated.
func Consume(ctx context.Context, js jetstream.JetStream, cons jetstream.Consumer, spec ConsumerSpec, h Handler, log *slog.Logger) error {
	spec = spec.withDefaults()
	dlq, err := events.DeadLetterSubject(spec.Stream, spec.Durable)
	if err != nil {
		return err
	}
	handle := func(msg jetstream.Msg) {
		meta, err := msg.Metadata()
		if err != nil {
			log.Warn("message without metadata", "subject", msg.Subject(), "err", err)
			_ = msg.Term()
			return
		}
		// Messages wait in the client's buffer; the ack timer starts again now.
		_ = msg.InProgress()
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), spec.HandlerTimeout)
		defer cancel()
		err = safeHandle(hctx, h, msg)
		if err == nil {
			if aerr := msg.Ack(); aerr != nil {
				log.Warn("ack", "subject", msg.Subject(), "err", aerr)
			}
			return
		}
		last := int(meta.NumDelivered) >= spec.MaxDeliver
		if IsPermanent(err) || last {
			log.Error("dead-lettering message", "subject", msg.Subject(), "stream_seq", meta.Sequence.Stream,
				"deliveries", meta.NumDelivered, "err", err)
			dead := nats.NewMsg(dlq)
			dead.Data = msg.Data()
			dead.Header.Set("egs-original-subject", msg.Subject())
			dead.Header.Set("egs-reason", err.Error())
			dead.Header.Set("egs-stream-seq", fmt.Sprint(meta.Sequence.Stream))
			if _, perr := js.PublishMsg(hctx, dead); perr != nil {
				log.Warn("dead-letter publish; leaving message for redelivery", "err", perr)
				_ = msg.NakWithDelay(spec.Backoff[len(spec.Backoff)-1])
				return
			}
			_ = msg.TermWithReason(err.Error())
			return
		}
		i := min(int(meta.NumDelivered)-1, len(spec.Backoff)-1)
		log.Warn("handler failed; will retry", "subject", msg.Subject(), "deliveries", meta.NumDelivered, "err", err)
		_ = msg.NakWithDelay(spec.Backoff[max(i, 0)])
	}
	cc, err := cons.Consume(handle, jetstream.PullMaxMessages(8))
	if err != nil {
		return fmt.Errorf("consume %s: %w", spec.Durable, err)
	}
	<-ctx.Done()
	cc.Drain()
	select {
	case <-cc.Closed():
	case <-time.After(spec.HandlerTimeout + time.Second):
	}
	return nil
}

func safeHandle(ctx context.Context, h Handler, msg jetstream.Msg) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	ev, err := ParseEvent(msg.Data())
	if err != nil {
		return Permanent(err)
	}
	return h(ctx, ev, msg)
}
