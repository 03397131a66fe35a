// Package natsapi connects the fleet to the bus: it consumes sample batches
// and GPR events, publishes idle reports, alerts and rollups, and answers the
// egs.rpc.v1.telemetry.* queries.
package natsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/services/telemetry/internal/fleet"
	"github.com/open-egs/egs/services/telemetry/internal/metrics"
)

// Source is the CloudEvents source of what the service publishes.
const Source = "egs/telemetry"

// RollupStreams are the rollup streams: resolution → stream config.
func RollupStreams() map[string]jetstream.StreamConfig {
	retain := map[string]time.Duration{"10s": time.Hour, "1m": 24 * time.Hour, "1h": 30 * 24 * time.Hour}
	out := map[string]jetstream.StreamConfig{}
	for _, r := range fleet.Resolutions {
		subj, _ := events.TelemetryRollupFilter(r.Name, "", "")
		out[r.Name] = bus.StreamDefaults(jetstream.StreamConfig{Name: RollupStream(r.Name), Subjects: []string{subj},
			Storage: jetstream.FileStorage, MaxAge: retain[r.Name]})
	}
	return out
}

// RollupStream is the stream of one resolution: EGS_TELEMETRY_ROLLUP_10S...
func RollupStream(res string) string {
	b := []byte(res)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return events.StreamTelemetryRollup + "_" + string(b)
}

// API is the bus side of the telemetry service.
type API struct {
	Fleet *fleet.Fleet
	NC    *nats.Conn
	JS    jetstream.JetStream
	Pub   *bus.Publisher
	GPRs  jetstream.KeyValue
	Log   *slog.Logger
	Now   func() time.Time
	// GPRTimeout bounds the scheduler call that reads a GPR's idle settings.
	GPRTimeout time.Duration
	// Missed counts the sample batches found missing (a node's sequence
	// jumped) that the stream did not hold either.
	Missed atomic.Uint64
	// Reads counts the reads of the sample stream: at start, after the
	// subscription was interrupted, and for a node's missing batches.
	Reads atomic.Uint64
}

// outgoing are the events one group caused, reused from group to group:
// idle reports and alerts as bus events, rollups (the bulk: one per node and
// window) as ready messages written by rollupMsg.
type outgoing struct {
	events  []bus.Outgoing
	rollups []rollupOut
	buf     []byte
}

type rollupOut struct {
	msg *nats.Msg
	id  string
}

func (o *outgoing) reset() {
	o.events = o.events[:0]
	clear(o.rollups)
	o.rollups = o.rollups[:0]
}

// effects turns what a batch caused into events, replacing out's.
func (a *API) effects(fx fleet.Effects, out *outgoing) {
	out.reset()
	add := func(subject, id, typ, entity string, at time.Time, data any) {
		ev, err := bus.NewEvent(id, Source, typ, entity, at, data)
		if err != nil {
			a.Log.Error("encode telemetry event", "subject", subject, "err", err)
			return
		}
		out.events = append(out.events, bus.Outgoing{Subject: subject, Event: ev})
	}
	for _, e := range fx.Idle {
		subj, err := events.TelemetryIdleSubject(e.Workspace, e.GPRID)
		if err != nil {
			a.Log.Error("idle subject", "gpr_id", e.GPRID, "err", err)
			continue
		}
		a.Log.Info("GPR idle", "gpr_id", e.GPRID, "workspace", e.Workspace, "idle_since", e.IdleSince)
		add(subj, fleet.IdleEventID(e), events.EventType("telemetry", "idle"), e.GPRID, e.At, e)
	}
	for _, al := range fx.Alerts {
		subj, err := events.TelemetryAlertSubject(al.Cluster, al.Node, al.Kind)
		if err != nil {
			continue
		}
		id := "alert." + al.UUID + "." + al.Kind + "." + al.State + "." + strconv.FormatInt(al.At.UnixMilli(), 10)
		add(subj, id, events.EventType("telemetry", "alert"), al.UUID, al.At, al)
	}
	for i := range fx.Rollups {
		r := &fx.Rollups[i]
		subj, err := events.TelemetryRollupSubject(r.Res, r.Cluster, r.Node)
		if err != nil {
			continue
		}
		id := "rollup." + r.Res + "." + r.Cluster + "." + events.NodeToken(r.Node) + "." + strconv.FormatInt(r.Start.Unix(), 10)
		var m *nats.Msg
		var ok bool
		if m, out.buf, ok = rollupMsg(subj, id, r, out.buf); ok {
			out.rollups = append(out.rollups, rollupOut{msg: m, id: id})
			continue
		}
		add(subj, id, events.EventType("telemetry", "rollup"), r.Node, r.Start, *r)
	}
}

// publish sends out, retrying a failed batch a few times (ids make that
// safe), and returns the last failure when every try failed.
func (a *API) publish(ctx context.Context, out *outgoing) error {
	if len(out.events) == 0 && len(out.rollups) == 0 {
		return nil
	}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err = a.Pub.PublishBatch(pctx, out.events)
		if err == nil {
			err = a.publishRollups(pctx, out.rollups)
		}
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	a.Log.Error("publish telemetry events; dropped", "count", len(out.events)+len(out.rollups), "err", err)
	return err
}

// rollupWindow bounds the rollup acknowledgements awaited at once.
const rollupWindow = 1024

// publishRollups publishes the rollups without waiting for each
// acknowledgement, then waits for all of them, with the de-duplication id
// that bus.Publisher sets. It returns the first failure.
func (a *API) publishRollups(ctx context.Context, rs []rollupOut) error {
	futs := make([]jetstream.PubAckFuture, 0, min(len(rs), rollupWindow))
	for start := 0; start < len(rs); start += rollupWindow {
		end := min(start+rollupWindow, len(rs))
		futs = futs[:0]
		for _, r := range rs[start:end] {
			f, err := a.JS.PublishMsgAsync(r.msg, jetstream.WithMsgID(r.id), jetstream.WithStallWait(5*time.Second))
			if err != nil {
				return fmt.Errorf("publish %s %s: %w", r.msg.Subject, r.id, err)
			}
			futs = append(futs, f)
		}
		for i, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return fmt.Errorf("publish %s %s: %w", rs[start+i].msg.Subject, rs[start+i].id, err)
			case <-ctx.Done():
				return fmt.Errorf("publish rollups: %w", ctx.Err())
			}
		}
	}
	return nil
}

// OnGPREvent attributes nodes on provisioned and ends it on released,
// completed, failed and cancelled. Provisioning reads the GPR's idle settings
// from the scheduler; if it does not answer, the event is retried.
func (a *API) OnGPREvent(ctx context.Context, ev bus.Event, _ jetstream.Msg) error {
	var g events.GPR
	if err := ev.Decode(&g); err != nil {
		return bus.Permanent(err)
	}
	switch g.Event {
	case events.GPRProvisioned:
		cctx, cancel := context.WithTimeout(ctx, a.GPRTimeout)
		rec, err := rpc.Call[rpc.GPR](cctx, a.NC, events.RPCGPRGet,
			rpc.GPRRef{Caller: rpc.Caller{Subject: "telemetry", Role: "admin"}, GPRID: g.GPRID})
		cancel()
		if rpc.CodeOf(err) == rpc.NotFound {
			return nil // deleted since
		}
		if err != nil {
			return fmt.Errorf("get gpr %s: %w", g.GPRID, err)
		}
		fg := fleet.GPR{ID: g.GPRID, Workspace: g.Workspace, Cluster: g.Cluster, Nodes: g.Nodes,
			IdleTimeout: rec.IdleTimeout, Enforce: rec.EnforceIdleTimeout, ProvisionedAt: g.At, Seq: g.Seq}
		b, err := json.Marshal(fg)
		if err != nil {
			return bus.Permanent(err)
		}
		if _, err := a.GPRs.Put(ctx, g.GPRID, b); err != nil {
			return fmt.Errorf("store gpr %s: %w", g.GPRID, err)
		}
		a.Fleet.Provision(fg)
		a.Log.Info("attributing GPUs", "gpr_id", g.GPRID, "workspace", g.Workspace, "nodes", len(g.Nodes), "idle_timeout", rec.IdleTimeout)
	case events.GPRReleased, events.GPRCompleted, events.GPRFailed, events.GPRCancelled:
		if err := a.GPRs.Delete(ctx, g.GPRID); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("forget gpr %s: %w", g.GPRID, err)
		}
		a.Fleet.Release(g.GPRID)
	}
	return nil
}

// Restore loads the attributed GPRs after a restart.
func (a *API) Restore(ctx context.Context) (int, error) {
	entries, err := bus.ReadAll(ctx, a.GPRs, "")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		var g fleet.GPR
		if err := json.Unmarshal(e.Value(), &g); err != nil {
			return 0, fmt.Errorf("decode gpr %s: %w", e.Key(), err)
		}
		a.Fleet.Provision(g)
	}
	return len(entries), nil
}

// Counters are the service's counters, for /metrics.
func (a *API) Counters() metrics.Counters {
	return metrics.Counters{Samples: a.Fleet.Samples(), Missed: a.Missed.Load(), Reads: a.Reads.Load()}
}

// Methods are the RPC endpoints.
func (a *API) Methods(log *slog.Logger, timeout time.Duration) []rpc.Method {
	return []rpc.Method{
		{Subject: events.RPCTelemetryLatest, Handler: rpc.Handle(log, timeout, a.latest)},
		{Subject: events.RPCTelemetryTop, Handler: rpc.Handle(log, timeout, a.top)},
		{Subject: events.RPCTelemetrySeries, Handler: rpc.Handle(log, timeout, a.series)},
		{Subject: events.RPCTelemetryMetrics, Handler: rpc.Handle(log, timeout, a.metrics)},
	}
}

// filter applies the caller's rights: a caller bound to a workspace sees only
// it; asking for another one is forbidden.
func filter(q events.TelemetryQuery) (fleet.Filter, error) {
	f := fleet.Filter{Workspace: q.Workspace, GPRID: q.GPRID, Cluster: q.Cluster, Node: q.Node}
	if q.Caller.Role == "" {
		return f, rpc.Errorf(rpc.Unauthenticated, "no caller")
	}
	if ws := q.Caller.Workspace; ws != "" && q.Caller.Role != "admin" {
		if f.Workspace != "" && f.Workspace != ws {
			return f, rpc.Errorf(rpc.Forbidden, "no access to workspace %q", f.Workspace)
		}
		f.Workspace = ws
	}
	return f, nil
}

func (a *API) reply(gpus []fleet.GPU, uuid string) events.TelemetryGPUs {
	now := a.Now()
	out := events.TelemetryGPUs{GPUs: make([]events.TelemetryGPU, 0, len(gpus))}
	for _, g := range gpus {
		if uuid != "" && g.Sample.UUID != uuid {
			continue
		}
		out.GPUs = append(out.GPUs, events.TelemetryGPU{Cluster: g.Cluster, Node: g.Node, Workspace: g.Workspace, GPRID: g.GPRID,
			At: g.At, AgeSeconds: now.Sub(g.At).Seconds(), IdleSince: g.IdleSince, GPUSample: g.Sample})
	}
	return out
}

func (a *API) latest(_ context.Context, q events.TelemetryQuery) (events.TelemetryGPUs, error) {
	f, err := filter(q)
	if err != nil {
		return events.TelemetryGPUs{}, err
	}
	return a.reply(a.Fleet.Latest(f), q.UUID), nil
}

func (a *API) top(_ context.Context, q events.TelemetryQuery) (events.TelemetryGPUs, error) {
	f, err := filter(q)
	if err != nil {
		return events.TelemetryGPUs{}, err
	}
	switch q.Metric {
	case fleet.MetricPower, fleet.MetricTemperature, fleet.MetricUtilization:
	case "":
		q.Metric = fleet.MetricUtilization
	default:
		return events.TelemetryGPUs{}, rpc.Errorf(rpc.BadRequest, "metric must be power, temperature or utilization")
	}
	n := q.N
	if n <= 0 {
		n = 10
	}
	return a.reply(a.Fleet.Top(f, q.Metric, min(n, 1000)), ""), nil
}

func (a *API) metrics(_ context.Context, q events.TelemetryQuery) (events.TelemetryMetrics, error) {
	f, err := filter(q)
	if err != nil {
		return events.TelemetryMetrics{}, err
	}
	var b bytes.Buffer
	if err := metrics.Write(&b, a.Fleet.Latest(f), a.Counters()); err != nil {
		return events.TelemetryMetrics{}, err
	}
	return events.TelemetryMetrics{Text: b.String()}, nil
}

// maxPoints bounds one series reply.
const maxPoints = 5000

func (a *API) series(ctx context.Context, q events.TelemetryQuery) (events.TelemetrySeries, error) {
	f, err := filter(q)
	if err != nil {
		return events.TelemetrySeries{}, err
	}
	if q.Res == "" {
		q.Res = "1m"
	}
	var size time.Duration
	for _, r := range fleet.Resolutions {
		if r.Name == q.Res {
			size = r.Size
		}
	}
	if size == 0 {
		return events.TelemetrySeries{}, rpc.Errorf(rpc.BadRequest, "res must be 10s, 1m or 1h")
	}
	if q.To.IsZero() {
		q.To = a.Now()
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-time.Hour)
	}
	if q.Cluster == "" && q.Node != "" {
		return events.TelemetrySeries{}, rpc.Errorf(rpc.BadRequest, "node needs cluster")
	}
	subj, err := events.TelemetryRollupFilter(q.Res, q.Cluster, q.Node)
	if err != nil {
		return events.TelemetrySeries{}, rpc.Errorf(rpc.BadRequest, "%v", err)
	}
	out := events.TelemetrySeries{Res: q.Res, Points: []events.RollupBatch{}}
	start := q.From.Add(-size)
	c, err := a.JS.CreateConsumer(ctx, RollupStream(q.Res), jetstream.ConsumerConfig{
		FilterSubjects: []string{subj}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &start,
		AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Minute, MemoryStorage: true})
	if err != nil {
		return out, fmt.Errorf("series consumer: %w", err)
	}
	defer func() { _ = a.JS.DeleteConsumer(context.WithoutCancel(ctx), RollupStream(q.Res), c.CachedInfo().Name) }()
	// One Info for the count; then each message's metadata tells what is
	// left (no round trip per page). The read goes on to the stream's end:
	// windows are in the agents' time, storage in the server's, so a storage
	// time says nothing of which windows can still follow.
	info, err := c.Info(ctx)
	if err != nil {
		return out, fmt.Errorf("series consumer info: %w", err)
	}
	pending := info.NumPending
	for pending > 0 {
		batch, err := c.Fetch(int(min(pending, 256)), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return out, fmt.Errorf("series fetch: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if md, err := m.Metadata(); err == nil {
				pending = md.NumPending
			}
			var r events.RollupBatch
			ev, err := bus.ParseEvent(m.Data())
			if err != nil || ev.Decode(&r) != nil {
				continue
			}
			if r.Start.Before(q.From) || !r.Start.Before(q.To) || !ownerMatch(r.Owner, f) {
				continue
			}
			if q.UUID != "" {
				var keep []events.GPURollup
				for _, g := range r.GPUs {
					if g.UUID == q.UUID {
						keep = append(keep, g)
					}
				}
				if len(keep) == 0 {
					continue
				}
				r.GPUs = keep
			}
			if len(out.Points) >= maxPoints {
				out.Truncated = true
				return out, nil
			}
			out.Points = append(out.Points, r)
		}
		if n == 0 {
			return out, nil
		}
	}
	return out, nil
}

func ownerMatch(o *events.GPUOwnerRef, f fleet.Filter) bool {
	if f.Workspace == "" && f.GPRID == "" {
		return true
	}
	if o == nil {
		return false
	}
	return (f.Workspace == "" || o.Workspace == f.Workspace) && (f.GPRID == "" || o.GPRID == f.GPRID)
}
