// Package service wires the GPR scheduler: it declares the GPR stream, the GPR
// and ledger buckets and its consumer of provision reports, serves the
// egs.rpc.v1.gpr-scheduler.* methods and runs the scheduling loop.
//
// Subjects published: egs.gpr.v1.<ws>.<gprId>.<event> (stream EGS_GPR),
// egs.queue.v1.<ws>.<gprId> (stream EGS_QUEUE, the last status per GPR),
// egs.cmd.v1.provisioner.<apply|remove> (stream EGS_CMD). Consumed:
// egs.provision.v1.> (durable gpr-scheduler-provision) and
// egs.workspace.v1.*.deleted (durable gpr-scheduler-workspaces: a deleted
// workspace's GPRs are cancelled or released) and, once the telemetry stream
// exists, egs.telemetry.v1.idle.> (durable gpr-scheduler-idle: GPRs that
// enforce an idle timeout are released with reason idle-timeout). Reads the bucket
// EGS_INVENTORY (owned by the provisioner) and calls workspace.get.
//
// One replica is active at a time: it holds a lease (bucket EGS_GPR_LEASE,
// entries expire after lease.ttl); the others stand by and take over when the
// lease is released on a clean stop or expires after a crash. A replica that
// fails to renew stops at once. Besides, the ledger's compare-and-set makes a
// double allocation impossible even if two were active.
package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"

	"github.com/open-egs/egs/services/gpr-scheduler/internal/app"
)

// Name is the service name (micro service, queue group, log field).
const Name = "gpr-scheduler"

// Version of the service.
const Version = "0.1.0"

// CrashAfterAdmit is the crash point between storing an admission and sending
// its apply command.
const CrashAfterAdmit = app.CrashAfterAdmit

// Config is the scheduler's configuration.
type Config struct {
	AckWait        time.Duration
	HandlerTimeout time.Duration
	RetryInterval  time.Duration
	BatchWindow    time.Duration
	LeaseTTL       time.Duration
	Resend         time.Duration
	// QueueStatusInterval is how often queue statuses are pushed (0: never);
	// QueueStatusHead how many GPRs at the head of the queue are pushed.
	QueueStatusInterval time.Duration
	QueueStatusHead     int
}

// RegisterFlags registers the configuration as flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.AckWait, "ack.wait", 30*time.Second, "Redelivery delay of an unacknowledged provision report.")
	fs.DurationVar(&c.HandlerTimeout, "handler.timeout", 10*time.Second, "Deadline of one RPC or event; keep below ack.wait.")
	fs.DurationVar(&c.RetryInterval, "retry.interval", 2*time.Second, "How often failed publishes are retried.")
	fs.DurationVar(&c.QueueStatusInterval, "queue.status.interval", 2*time.Second, "How often changed queue positions, estimates and reasons are pushed on egs.queue.v1 (0: never).")
	fs.IntVar(&c.QueueStatusHead, "queue.status.head", 1000, "How many GPRs at the head of the queue get queue-status events.")
	fs.DurationVar(&c.Resend, "command.resend", 30*time.Second, "A GPR waiting this long for the provisioner's report has its command sent again.")
	fs.DurationVar(&c.LeaseTTL, "lease.ttl", 15*time.Second, "How long a crashed active replica blocks a standby from taking over.")
	fs.DurationVar(&c.BatchWindow, "batch.window", 0, "Least time between two scheduling passes; changes within it are decided together.")
}

// Defaults returns the flag defaults.
func Defaults() Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("", flag.ContinueOnError))
	return c
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.HandlerTimeout <= 0 {
		errs = append(errs, fmt.Errorf("handler.timeout must be positive"))
	}
	if c.AckWait <= c.HandlerTimeout {
		errs = append(errs, fmt.Errorf("ack.wait (%s) must exceed handler.timeout (%s)", c.AckWait, c.HandlerTimeout))
	}
	if c.LeaseTTL < 300*time.Millisecond {
		errs = append(errs, fmt.Errorf("lease.ttl must be at least 300ms"))
	}
	if c.RetryInterval <= 0 {
		errs = append(errs, fmt.Errorf("retry.interval must be positive"))
	}
	return errors.Join(errs...)
}

// Deps is what Run needs. The caller owns NATS.
type Deps struct {
	Config     Config
	NATS       *nats.Conn
	Log        *slog.Logger
	Ready      func()
	Now        func() time.Time
	CrashPoint func(point string) // tests only: called at named points
}

// Run serves until ctx ends.
func Run(ctx context.Context, d Deps) error {
	if err := d.Config.Validate(); err != nil {
		return err
	}
	// A publish whose acknowledgement never comes fails after 10s instead of
	// holding the scheduler's lock forever.
	js, err := jetstream.New(d.NATS, jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	gprStream, err := bus.EnsureStream(ctx, js, bus.StreamDefaults(jetstream.StreamConfig{
		Name: events.StreamGPR, Subjects: []string{events.SubjectGPRAll}, Storage: jetstream.FileStorage,
		MaxAge: 90 * 24 * time.Hour,
	}))
	if err != nil {
		return err
	}
	// The last queue status of each GPR (a late subscriber reads where each
	// queued GPR stands), kept a day.
	if _, err := bus.EnsureStream(ctx, js, bus.StreamDefaults(jetstream.StreamConfig{
		Name: events.StreamQueue, Subjects: []string{events.SubjectQueueAll}, Storage: jetstream.FileStorage,
		MaxMsgsPerSubject: 1, MaxAge: 24 * time.Hour,
	})); err != nil {
		return err
	}
	if _, err := bus.EnsureStream(ctx, js, bus.CommandStream()); err != nil {
		return err
	}
	if err := bus.EnsureDeadLetterStream(ctx, js); err != nil {
		return err
	}
	l, err := newLease(ctx, js, d.Config.LeaseTTL, d.Log)
	if err != nil {
		return err
	}
	var readyOnce sync.Once
	ready := func() {
		if d.Ready != nil {
			readyOnce.Do(d.Ready)
		}
	}
	for {
		if err := l.acquire(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		lost, err := active(ctx, d, js, gprStream, l, ready)
		if !lost || ctx.Err() != nil {
			return err
		}
		// Another replica may be active now: stand by again.
		d.Log.Warn("scheduler lease lost; standing by", "err", err)
	}
}

// active does the active replica's work while it holds the lease. The lease
// outlives the work: it is renewed until every goroutine has returned, and
// only then released. lost reports that the lease could not be renewed.
func active(ctx context.Context, d Deps, js jetstream.JetStream, gprStream jetstream.Stream, l *lease, ready func()) (lost bool, err error) {
	holdCtx, stopHolding := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHolding()
	workCtx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	held := make(chan error, 1)
	go func() {
		err := l.hold(holdCtx)
		if err != nil {
			stopWork()
		}
		held <- err
	}()
	g, gctx := errgroup.WithContext(workCtx)
	err = run(gctx, d, js, gprStream, g, l.fence, ready)
	if err != nil {
		stopWork()
	}
	err = errors.Join(err, g.Wait())
	stopHolding()
	if herr := <-held; herr != nil {
		return true, errors.Join(err, herr)
	}
	l.release()
	return false, err
}

// run is the active replica's work, started in g once the lease is held.
func run(ctx context.Context, d Deps, js jetstream.JetStream, gprStream jetstream.Stream, g *errgroup.Group, fence func() error, ready func()) error {
	gprs, err := bus.EnsureKV(ctx, js, jetstream.KeyValueConfig{Bucket: events.BucketGPRs, History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		return err
	}
	ledger, err := bus.EnsureKV(ctx, js, jetstream.KeyValueConfig{Bucket: events.BucketLedger, History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		return err
	}
	s, err := app.New(ctx, app.Options{NATS: d.NATS, JS: js, GPRStream: gprStream, GPRs: gprs, Ledger: ledger, Log: d.Log, Now: d.Now, CrashPoint: d.CrashPoint,
		Fence: fence, Resend: d.Config.Resend})
	if err != nil {
		return err
	}
	inv, err := bus.WaitKV(ctx, js, events.BucketInventory)
	if err != nil {
		return err
	}
	provStream, err := waitStream(ctx, js, events.StreamProvision)
	if err != nil {
		return err
	}
	_ = provStream
	spec := bus.ConsumerSpec{Stream: events.StreamProvision, Durable: events.DurableSchedulerProvision,
		FilterSubjects: []string{events.SubjectProvisionAll}, AckWait: d.Config.AckWait, HandlerTimeout: d.Config.HandlerTimeout}
	cons, err := bus.EnsureConsumer(ctx, js, spec)
	if err != nil {
		return err
	}
	if _, err := waitStream(ctx, js, events.StreamWorkspace); err != nil {
		return err
	}
	wsSpec := bus.ConsumerSpec{Stream: events.StreamWorkspace, Durable: events.DurableSchedulerWorkspaces,
		FilterSubjects: []string{events.SubjectWorkspaceDeleted}, AckWait: d.Config.AckWait, HandlerTimeout: d.Config.HandlerTimeout}
	wsCons, err := bus.EnsureConsumer(ctx, js, wsSpec)
	if err != nil {
		return err
	}

	gctx := ctx
	loaded := make(chan struct{})
	g.Go(func() error { return s.WatchInventory(gctx, inv, func() { close(loaded) }) })
	select {
	case <-loaded:
	case <-gctx.Done():
		return nil
	}
	if err := s.Recover(ctx); err != nil {
		return err
	}
	t := d.Config.HandlerTimeout
	svc, err := rpc.Serve(d.NATS, Name, Version,
		rpc.Method{Subject: events.RPCGPRCreate, Handler: rpc.Handle(d.Log, t, s.Create)},
		rpc.Method{Subject: events.RPCGPRGet, Handler: rpc.Handle(d.Log, t, s.Get)},
		rpc.Method{Subject: events.RPCGPRList, Handler: rpc.Handle(d.Log, t, s.List)},
		rpc.Method{Subject: events.RPCGPRUpdate, Handler: rpc.Handle(d.Log, t, s.Update)},
		rpc.Method{Subject: events.RPCGPRDelete, Handler: rpc.Handle(d.Log, t, s.Delete)},
		rpc.Method{Subject: events.RPCGPRWaitTime, Handler: rpc.Handle(d.Log, t, s.WaitTime)},
		rpc.Method{Subject: events.RPCGPRAllocations, Handler: rpc.Handle(d.Log, t, s.Allocations)},
		rpc.Method{Subject: events.RPCGPRApprove, Handler: rpc.Handle(d.Log, t, s.Approve)},
		rpc.Method{Subject: events.RPCGPRReject, Handler: rpc.Handle(d.Log, t, s.Reject)},
		rpc.Method{Subject: events.RPCGPRMove, Handler: rpc.Handle(d.Log, t, s.Move)},
	)
	if err != nil {
		return err
	}
	g.Go(func() error { return s.Loop(gctx, d.Config.RetryInterval, d.Config.BatchWindow) })
	g.Go(func() error { return bus.Consume(gctx, js, cons, spec, s.OnProvision, d.Log) })
	g.Go(func() error { return bus.Consume(gctx, js, wsCons, wsSpec, s.OnWorkspaceDeleted, d.Log) })
	g.Go(func() error { return consumeIdle(gctx, js, d, s) })
	if d.Config.QueueStatusInterval > 0 {
		g.Go(func() error { return s.QueueStatusLoop(gctx, d.Config.QueueStatusInterval, d.Config.QueueStatusHead) })
	}
	g.Go(func() error {
		<-gctx.Done()
		return svc.Stop()
	})
	d.Log.Info("gpr-scheduler active", "gprs", s.Count())
	ready()
	return nil
}

// consumeIdle follows the telemetry service's idle reports once its stream
// exists (a deployment without telemetry simply never enforces idle timeouts).
func consumeIdle(ctx context.Context, js jetstream.JetStream, d Deps, s *app.Scheduler) error {
	if _, err := waitStream(ctx, js, events.StreamTelemetry); err != nil {
		return nil // ctx ended
	}
	spec := bus.ConsumerSpec{Stream: events.StreamTelemetry, Durable: events.DurableSchedulerIdle,
		FilterSubjects: []string{events.SubjectTelemetryIdleAll}, AckWait: d.Config.AckWait, HandlerTimeout: d.Config.HandlerTimeout}
	cons, err := bus.EnsureConsumer(ctx, js, spec)
	if err != nil {
		return err
	}
	return bus.Consume(ctx, js, cons, spec, s.OnIdle, d.Log)
}

func waitStream(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, error) {
	for {
		st, err := js.Stream(ctx, name)
		if err == nil {
			return st, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("open stream %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for stream %s: %w", name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
