// Package service wires the telemetry service: it declares EGS_TELEMETRY
// (sample batches, idle reports, alerts) and the rollup streams, consumes the
// node agents' samples and the GPR events, keeps the latest state of every
// GPU, detects idle GPRs and threshold crossings, rolls samples up, answers
// egs.rpc.v1.telemetry.* and serves /metrics under dcgm-exporter names. It is
// public so that the standalone process can compose every service.
package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/services/telemetry/internal/fleet"
	"github.com/open-egs/egs/services/telemetry/internal/metrics"
	"github.com/open-egs/egs/services/telemetry/internal/natsapi"
)

// Name is the service's name: the micro service name and queue group.
const Name = "telemetry"

// Version is the version the micro service reports.
const Version = "0.1.0"

// Config is the configuration of the telemetry service.
type Config struct {
	RPCTimeout      time.Duration
	HTTPAddr        string // /metrics; "" disables
	SampleRetention time.Duration
	Fetch           int
	Buffer          int
	Replay          time.Duration
	ResumeMargin    time.Duration
	TempThresholdC  float64
	PowerThresholdW float64 // 0: each GPU's power limit
	ShapesFile      string  // thresholds per GPU model (JSON); "" : none
	Hysteresis      float64
	Rollups         bool
	FlushGrace      time.Duration
	GPRTimeout      time.Duration
}

// RegisterFlags registers the service's flags on fs, with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.RPCTimeout, "rpc.timeout", 10*time.Second, "Deadline of one request/reply call.")
	fs.StringVar(&c.HTTPAddr, "http.addr", ":9400", "Address of /metrics (dcgm-exporter's port); empty disables.")
	fs.DurationVar(&c.SampleRetention, "samples.retention", time.Hour, "How long EGS_TELEMETRY keeps raw sample batches (and idle reports and alerts).")
	fs.IntVar(&c.Fetch, "samples.fetch", 512, "The most sample batches applied at once (and read ahead from the stream when catching up).")
	fs.IntVar(&c.Buffer, "samples.buffer", 65536, "Sample batches the live subscription holds while the service reads the stream; beyond it they are read from the stream again.")
	fs.DurationVar(&c.Replay, "samples.replay", 15*time.Second, "How far before its checkpoint the service reads the sample stream again when it starts.")
	fs.DurationVar(&c.ResumeMargin, "samples.resume-margin", 10*time.Second, "How far before the live buffer was last empty the service reads the sample stream after a drop or reconnect.")
	fs.Float64Var(&c.TempThresholdC, "threshold.temperature", 87, "GPU temperature (°C) above which an alert is raised.")
	fs.Float64Var(&c.PowerThresholdW, "threshold.power", 0, "Power draw (W) above which an alert is raised; 0: the GPU's power limit.")
	fs.StringVar(&c.ShapesFile, "threshold.shapes", "", `JSON file of thresholds per GPU model (NVML's name), e.g. {"NVIDIA H100 80GB HBM3": {"powerW": 650, "temperatureC": 85}}; a value left out is the default.`)
	fs.Float64Var(&c.Hysteresis, "threshold.hysteresis", 0.05, "Fraction below a threshold a reading must fall to clear its alert.")
	fs.BoolVar(&c.Rollups, "rollups", true, "Roll samples up into 10s, 1m and 1h windows.")
	fs.DurationVar(&c.FlushGrace, "rollups.flush-grace", 5*time.Second, "How long after a window's end it is closed when its node stopped reporting.")
	fs.DurationVar(&c.GPRTimeout, "gpr.timeout", 5*time.Second, "Deadline of the scheduler call reading a GPR's idle settings.")
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.RPCTimeout <= 0 {
		errs = append(errs, errors.New("rpc.timeout must be positive"))
	}
	if c.SampleRetention < time.Minute {
		errs = append(errs, errors.New("samples.retention must be at least 1m"))
	}
	if c.Fetch < 1 || c.Buffer < c.Fetch {
		errs = append(errs, errors.New("samples.fetch must be positive and at most samples.buffer"))
	}
	if c.Replay < 0 || c.ResumeMargin < 0 {
		errs = append(errs, errors.New("samples.replay and samples.resume-margin must not be negative"))
	}
	if c.Hysteresis < 0 || c.Hysteresis >= 1 {
		errs = append(errs, errors.New("threshold.hysteresis must be in [0, 1)"))
	}
	if c.GPRTimeout <= 0 {
		errs = append(errs, errors.New("gpr.timeout must be positive"))
	}
	return errors.Join(errs...)
}

// Deps are what Run needs; the caller owns and closes NATS.
type Deps struct {
	Config Config
	NATS   *nats.Conn
	Log    *slog.Logger     // nil: discard
	Ready  func()           // called once when declared and serving; may be nil
	Now    func() time.Time // the clock of sample ages and series defaults; nil: time.Now
	// Listener, when set, serves /metrics instead of Config.HTTPAddr.
	Listener net.Listener
	// Shapes overrides the thresholds per GPU model name (NVML's name);
	// nil: those of Config.ShapesFile.
	Shapes map[string]fleet.Thresholds
	// OnSettled, when set, is called each time applied samples' effects are
	// stored, with the number of GPU samples settled so far (benchmarks).
	OnSettled func(samples uint64)
}

// legacySamplesDurable is the durable consumer that versions before the
// live subscription read samples through.
const legacySamplesDurable = "telemetry-samples"

// Stream is the configuration of EGS_TELEMETRY.
func Stream(retention time.Duration) jetstream.StreamConfig {
	return bus.StreamDefaults(jetstream.StreamConfig{Name: events.StreamTelemetry, Subjects: []string{events.SubjectTelemetryAll},
		Storage: jetstream.FileStorage, MaxAge: retention})
}

// Run declares the streams, bucket and consumers, restores the attributed
// GPRs, serves until ctx ends, then stops taking requests and samples and
// returns nil. A failure while starting is returned at once.
func Run(ctx context.Context, d Deps) error {
	if err := d.Config.Validate(); err != nil {
		return fmt.Errorf("telemetry config: %w", err)
	}
	if d.NATS == nil {
		return errors.New("telemetry: no NATS connection")
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := d.Now
	if now == nil {
		now = time.Now
	}
	cfg := d.Config
	def := fleet.Thresholds{TempC: cfg.TempThresholdC, PowerW: cfg.PowerThresholdW}
	shapes := d.Shapes
	if shapes == nil && cfg.ShapesFile != "" {
		var err error
		if shapes, err = loadShapes(cfg.ShapesFile, def); err != nil {
			return err
		}
	}
	js, err := jetstream.New(d.NATS)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if _, err := bus.EnsureStream(ctx, js, Stream(cfg.SampleRetention)); err != nil {
		return err
	}
	for _, sc := range natsapi.RollupStreams() {
		if _, err := bus.EnsureStream(ctx, js, sc); err != nil {
			return err
		}
	}
	if err := bus.EnsureDeadLetterStream(ctx, js); err != nil {
		return err
	}
	gprs, err := bus.EnsureKV(ctx, js, jetstream.KeyValueConfig{Bucket: events.BucketTelemetryGPRs, History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		return err
	}
	state, err := bus.EnsureKV(ctx, js, jetstream.KeyValueConfig{Bucket: events.BucketTelemetryState, History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		return err
	}
	if err := retireLegacyConsumer(ctx, js, state, log); err != nil {
		return err
	}
	if err := waitStream(ctx, js, events.StreamGPR); err != nil {
		return err
	}
	gprSpec := bus.ConsumerSpec{Stream: events.StreamGPR, Durable: events.DurableTelemetryGPRs,
		FilterSubjects: []string{events.SubjectGPRAll}, HandlerTimeout: cfg.GPRTimeout + 2*time.Second}
	gprCons, err := bus.EnsureConsumer(ctx, js, gprSpec)
	if err != nil {
		return err
	}
	fc := fleet.Config{Default: def, Shapes: shapes, Hysteresis: cfg.Hysteresis, Now: now}
	if cfg.Rollups {
		fc.Rollup = fleet.Resolutions[0].Size
	}
	api := &natsapi.API{Fleet: fleet.New(fc), NC: d.NATS, JS: js, Pub: bus.NewPublisher(js), GPRs: gprs, Log: log, Now: now,
		GPRTimeout: cfg.GPRTimeout}
	n, err := api.Restore(ctx)
	if err != nil {
		return err
	}
	svc, err := rpc.Serve(d.NATS, Name, Version, api.Methods(log, cfg.RPCTimeout)...)
	if err != nil {
		return err
	}
	var srv *http.Server
	ln := d.Listener
	if ln == nil && cfg.HTTPAddr != "" {
		if ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			_ = svc.Stop()
			return fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
		}
	}
	if ln != nil {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			_ = metrics.Write(w, api.Fleet.Latest(fleet.Filter{}), api.Counters())
		})
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	}
	// Subscribed before ready: nothing published from here on is missed.
	ic := natsapi.IngestConfig{Group: cfg.Fetch, Buffer: cfg.Buffer, Replay: cfg.Replay, ResumeMargin: cfg.ResumeMargin,
		State: state, OnSettled: d.OnSettled}
	if cfg.Rollups {
		ic.FlushGrace = cfg.FlushGrace
	}
	ingest, err := api.Subscribe(ic)
	if err != nil {
		_ = svc.Stop()
		if ln != nil && d.Listener == nil {
			_ = ln.Close()
		}
		return err
	}
	log.Info("telemetry service ready", "gprs_restored", n, "metrics_addr", addr(ln))
	if d.Ready != nil {
		d.Ready()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return ingest(gctx) })
	g.Go(func() error { return bus.Consume(gctx, js, gprCons, gprSpec, api.OnGPREvent, log) })
	if srv != nil {
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics http: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), 5*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	err = g.Wait()
	if serr := svc.Stop(); serr != nil {
		err = errors.Join(err, fmt.Errorf("stop telemetry rpc: %w", serr))
	}
	log.Info("telemetry service stopped")
	return err
}

// retireLegacyConsumer deletes the durable consumer that versions before
// the live subscription read samples through, after taking its ack floor as
// the checkpoint when there is none yet, so that the first start of this
// version reads only what the old one had not settled.
func retireLegacyConsumer(ctx context.Context, js jetstream.JetStream, state jetstream.KeyValue, log *slog.Logger) error {
	c, err := js.Consumer(ctx, events.StreamTelemetry, legacySamplesDurable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look for the old samples consumer: %w", err)
	}
	if floor := c.CachedInfo().AckFloor.Stream; floor > 0 {
		if _, err := state.Get(ctx, natsapi.CheckpointKey); errors.Is(err, jetstream.ErrKeyNotFound) {
			stream, err := js.Stream(ctx, events.StreamTelemetry)
			if err != nil {
				return err
			}
			if m, err := stream.GetMsg(ctx, floor); err == nil {
				if _, err := state.Create(ctx, natsapi.CheckpointKey, []byte(m.Time.UTC().Format(time.RFC3339Nano))); err != nil &&
					!errors.Is(err, jetstream.ErrKeyExists) {
					return fmt.Errorf("seed the checkpoint: %w", err)
				}
			}
		}
	}
	if err := js.DeleteConsumer(ctx, events.StreamTelemetry, legacySamplesDurable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		log.Warn("delete the old samples consumer", "err", err)
	}
	return nil
}

func addr(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// waitStream waits until another service has declared stream name.
func waitStream(ctx context.Context, js jetstream.JetStream, name string) error {
	for {
		_, err := js.Stream(ctx, name)
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("stream %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for stream %s: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// loadShapes reads a thresholds file: a JSON object from GPU model name
// (NVML's, e.g. "NVIDIA H100 80GB HBM3") to {"powerW", "temperatureC"}; a
// value left out is def's. 0 W means the GPU's own power limit.
func loadShapes(path string, def fleet.Thresholds) (map[string]fleet.Thresholds, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("threshold.shapes: %w", err)
	}
	var raw map[string]struct {
		PowerW       *float64 `json:"powerW"`
		TemperatureC *float64 `json:"temperatureC"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("threshold.shapes %s: %w", path, err)
	}
	out := make(map[string]fleet.Thresholds, len(raw))
	for name, v := range raw {
		t := def
		if v.PowerW != nil {
			t.PowerW = *v.PowerW
		}
		if v.TemperatureC != nil {
			t.TempC = *v.TemperatureC
		}
		if name == "" || t.PowerW < 0 || t.TempC < 0 {
			return nil, fmt.Errorf("threshold.shapes %s: %q: a model name and thresholds of at least 0 are needed", path, name)
		}
		out[name] = t
	}
	return out, nil
}
