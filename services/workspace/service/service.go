// Package service wires the workspace service: its configuration, its
// dependencies and Run, which declares the stream and bucket it owns, serves
// the egs.rpc.v1.workspace.* methods and stops cleanly. It is public so that
// the standalone process can compose every service in one binary.
package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/services/workspace/internal/kvstore"
	"github.com/open-egs/egs/services/workspace/internal/natsapi"
	"github.com/open-egs/egs/services/workspace/internal/natspub"
	"github.com/open-egs/egs/services/workspace/internal/workspace"
)

// Name is the service's name: the micro service name and queue group.
const Name = "workspace"

// Version is the version the micro service reports.
const Version = "0.1.0"

// Config is the configuration of the workspace service.
type Config struct {
	// RPCTimeout bounds the handling of one request.
	RPCTimeout time.Duration
}

// RegisterFlags registers the service's flags on fs, with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.RPCTimeout, "rpc.timeout", 10*time.Second, "Deadline of one request/reply call.")
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.RPCTimeout <= 0 {
		errs = append(errs, errors.New("rpc.timeout must be positive"))
	}
	return errors.Join(errs...)
}

// Deps are what Run needs; the caller owns and closes NATS.
type Deps struct {
	Config Config
	NATS   *nats.Conn
	Log    *slog.Logger     // nil: discard
	Ready  func()           // called once when declared and serving; may be nil
	Now    func() time.Time // the clock; nil: time.Now
}

// Run declares the workspace stream (events.StreamWorkspace) and buckets
// (events.BucketWorkspaces, kvstore.BucketTemplates, kvstore.BucketBindings),
// republishes the created and policy-updated events a crash may have lost, serves the RPC methods until ctx ends, then stops taking requests and
// returns nil. A failure while starting is returned at once.
func Run(ctx context.Context, d Deps) error {
	if err := d.Config.Validate(); err != nil {
		return fmt.Errorf("workspace config: %w", err)
	}
	if d.NATS == nil {
		return errors.New("workspace: no NATS connection")
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(d.NATS)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if _, err := bus.EnsureStream(ctx, js, natspub.Stream()); err != nil {
		return err
	}
	kv, err := bus.EnsureKV(ctx, js, kvstore.Bucket())
	if err != nil {
		return err
	}
	templates, err := bus.EnsureKV(ctx, js, kvstore.TemplatesBucket())
	if err != nil {
		return err
	}
	bindings, err := bus.EnsureKV(ctx, js, kvstore.BindingsBucket())
	if err != nil {
		return err
	}
	m := workspace.NewManager(kvstore.New(kv), kvstore.NewClusters(js), natspub.New(js),
		kvstore.NewTemplates(templates), kvstore.NewBindings(bindings), d.Now)
	n, err := m.Recover(ctx)
	if err != nil {
		return fmt.Errorf("republish workspace events: %w", err)
	}
	if n > 0 {
		log.Info("republished workspace created events", "count", n)
	}
	svc, err := rpc.Serve(d.NATS, Name, Version, natsapi.New(m).Methods(log, d.Config.RPCTimeout)...)
	if err != nil {
		return err
	}
	log.Info("workspace service ready")
	if d.Ready != nil {
		d.Ready()
	}
	<-ctx.Done()
	// Stop drains the endpoints: requests in hand finish, no new ones arrive.
	if err := svc.Stop(); err != nil {
		return fmt.Errorf("stop workspace rpc: %w", err)
	}
	log.Info("workspace service stopped")
	return nil
}
