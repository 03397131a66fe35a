package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/events"
)

// Connect dials url with unlimited reconnects and logs connection changes.
// Extra options (nats.InProcessServer for the standalone process, credentials)
// are applied last.
func Connect(url, name string, log *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("nats async error", "subject", subj, "err", err)
		}),
	}
	opts = append(opts, extra...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect nats %s: %w", url, err)
	}
	return nc, nil
}

// EnsureStream creates the stream or updates it to cfg; calling it twice is harmless.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		s, err := js.CreateOrUpdateStream(ctx, cfg)
		if err == nil {
			return s, nil
		}
		lastErr = err
		// A fresh cluster can answer "no suitable peers" once right after election.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("ensure stream %s: %w", cfg.Name, lastErr)
}

// EnsureKV creates the bucket or updates it to cfg; calling it twice is harmless.
func EnsureKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("ensure kv %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// WaitKV returns the bucket once its owner has declared it, polling until ctx
// ends. Readers of another service's bucket use it instead of creating the
// bucket themselves (only the owner declares).
func WaitKV(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyValue, error) {
	for {
		kv, err := js.KeyValue(ctx, bucket)
		if err == nil {
			return kv, nil
		}
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, fmt.Errorf("open kv %s: %w", bucket, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for kv %s: %w", bucket, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// StreamDefaults fills the settings every EGS stream shares: file storage, a
// de-duplication window long enough to cover a restart, and one replica unless
// set.
func StreamDefaults(cfg jetstream.StreamConfig) jetstream.StreamConfig {
	if cfg.Duplicates == 0 {
		cfg.Duplicates = 10 * time.Minute
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	return cfg
}

// CommandStream is the work-queue stream of commands (egs.cmd.v1.>). Every
// producer and consumer of commands declares it with exactly this config, so
// whichever starts first creates it.
func CommandStream() jetstream.StreamConfig {
	return StreamDefaults(jetstream.StreamConfig{
		Name:      events.StreamCommands,
		Subjects:  []string{events.SubjectCommandsAll},
		Retention: jetstream.WorkQueuePolicy,
		Storage:   jetstream.FileStorage,
	})
}

// ReadAll returns the current entries of kv whose keys match filter (a key
// pattern, e.g. "*" or ">"; empty means every key), read in one pass over the
// bucket with a watcher rather than one request per key. Deleted keys are left out.
func ReadAll(ctx context.Context, kv jetstream.KeyValue, filter string) ([]jetstream.KeyValueEntry, error) {
	if filter == "" {
		filter = ">"
	}
	w, err := kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", kv.Bucket(), err)
	}
	defer func() { _ = w.Stop() }()
	var out []jetstream.KeyValueEntry
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("read %s: %w", kv.Bucket(), ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("read %s: watcher closed", kv.Bucket())
			}
			if e == nil { // every current value has been delivered
				return out, nil
			}
			out = append(out, e)
		}
	}
}

// BucketReader opens another service's bucket on first use. Until the owner
// has declared it, KV returns nil and no error: the bucket is empty by
// definition. It is safe for concurrent use.
type BucketReader struct {
	js     jetstream.JetStream
	bucket string

	mu sync.Mutex
	kv jetstream.KeyValue // nil until the bucket exists
}

// NewBucketReader returns a reader of bucket on js.
func NewBucketReader(js jetstream.JetStream, bucket string) *BucketReader {
	return &BucketReader{js: js, bucket: bucket}
}

// KV returns the bucket, or nil while it does not exist yet.
func (r *BucketReader) KV(ctx context.Context) (jetstream.KeyValue, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.kv != nil {
		return r.kv, nil
	}
	kv, err := r.js.KeyValue(ctx, r.bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open kv %s: %w", r.bucket, err)
	}
	r.kv = kv
	return kv, nil
}
