package natsapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/services/telemetry/internal/fleet"
	"github.com/open-egs/egs/services/telemetry/internal/samplejson"
)

// IngestConfig configures Ingest.
type IngestConfig struct {
	// Group is the most batches applied (and settled) at once.
	Group int
	// Buffer is the most batches the live subscription holds while the
	// service reads the stream; beyond it the subscription drops, and the
	// service reads what it dropped from the stream.
	Buffer int
	// Replay is how far before its checkpoint the service reads the stream
	// again when it starts.
	Replay time.Duration
	// ResumeMargin is how far before the buffer was last seen empty a read
	// after a reconnect or a drop starts: it covers the time a batch may
	// wait in the connection's buffers between being stored and received.
	ResumeMargin time.Duration
	// State holds the checkpoint (key CheckpointKey).
	State jetstream.KeyValue
	// FlushGrace is how long after its end (by the node's clock) the
	// rollup window of a node that stopped reporting is closed; 0: never
	// (rollups off).
	FlushGrace time.Duration
	// OnSettled, when set, is called after each group's effects are stored
	// with the number of GPU samples settled so far (tests and benchmarks).
	OnSettled func(samples uint64)
}

// CheckpointKey is the key of the checkpoint in the telemetry state bucket:
// the time (RFC 3339) before which every sample batch stored in
// EGS_TELEMETRY has been applied and its effects stored.
const CheckpointKey = "samples.settled"

const (
	// caughtUpWait is how long a read of the stream waits for a message
	// before it takes the stream as read to its end.
	caughtUpWait = 250 * time.Millisecond
	// gapLookBack is how far before the last batch of a node the read of
	// its missing batches starts (the agent's clock may run ahead of the
	// server's).
	gapLookBack = time.Minute
	// checkpointEvery bounds how often the checkpoint is written.
	checkpointEvery = time.Second
	// stalledAfter is how long a read of the stream waits for a message it
	// knows is pending before it gives up (and is retried).
	stalledAfter = 5 * time.Second
)

// Ingest (the function Subscribe returns) applies the nodes' sample batches
// until ctx ends.
//
// Batches arrive on a core subscription to egs.telemetry.v1.gpu.>, beside
// EGS_TELEMETRY, which stores them: the server hands each message to the
// subscription as it hands it to the stream, so the service reads nothing
// back from the stream while it keeps up. The stream is read only for what
// the subscription did not bring: at start, from the checkpoint (less
// Replay) to the stream's end; after a reconnect or when the subscription
// dropped, from shortly before the last live group; and when a node's
// batch sequence jumps (the batch carries its agent's boot and sequence),
// that node's missing batches, before the batch that revealed the gap. A
// jump that the agent's own drop count explains is no gap. Batches already
// applied (same boot, sequence not higher) are skipped, so a batch read
// twice counts once, and each node's batches are applied in order.
//
// Whatever has arrived (at most Group batches) is decoded and applied to the
// fleet under one lock; a second goroutine, owned by Ingest, then publishes
// the group's effects and advances the checkpoint, so the next group is
// decoded while the server stores the effects. The checkpoint only moves
// past a group once its effects are stored. Undecodable batches are logged
// and skipped. Before returning, Ingest settles the groups it applied.
//
// Subscribe subscribes (so that nothing published from its return on is
// missed) and returns the run function.
func (a *API) Subscribe(cfg IngestConfig) (run func(ctx context.Context) error, err error) {
	in := &ingest{a: a, cfg: cfg, dec: samplejson.NewDecoder(), seqs: map[nodeKey]*nodeSeq{},
		live: make(chan *nats.Msg, cfg.Buffer), applied: make(chan appliedGroup, 4)}
	sub, err := a.NC.ChanSubscribe(events.SubjectTelemetryGPUAll, in.live)
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", events.SubjectTelemetryGPUAll, err)
	}
	if err := a.NC.FlushTimeout(10 * time.Second); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe %s: %w", events.SubjectTelemetryGPUAll, err)
	}
	in.sub = sub
	// Whatever is stored from here on also arrives on the subscription.
	now := time.Now()
	in.lastLive, in.emptyAt, in.reconnects = now, now, a.NC.Stats().Reconnects
	return in.run, nil
}

func (in *ingest) run(ctx context.Context) error {
	cfg, sub := in.cfg, in.sub
	from, err := in.checkpoint(ctx)
	if err != nil {
		_ = sub.Unsubscribe()
		return err
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		in.settle(ctx)
	}()
	defer func() {
		_ = sub.Unsubscribe()
		close(in.applied)
		<-finished
	}()
	if err := in.catchUp(ctx, from, false); err != nil {
		return err
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if err := in.resume(ctx); err != nil {
			return err
		}
		var m *nats.Msg
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			in.flush()
			continue
		case m = <-in.live:
		}
		// The drop or reconnect that the check above did not see yet.
		if err := in.resume(ctx); err != nil {
			return err
		}
		// Batches taken from here on were received after the last live
		// group; while disconnected that time stays where the outage began.
		if in.a.NC.IsConnected() {
			in.lastLive = time.Now()
		}
		in.add(ctx, m, true)
	fill:
		for in.n < cfg.Group && in.force.IsZero() {
			select {
			case m := <-in.live:
				in.add(ctx, m, true)
			default:
				// Everything received so far is taken; unless something was
				// dropped meanwhile (not noticed yet), in which case the
				// time stays before it, for resume to read from.
				now := time.Now()
				if !in.interruptedSince() {
					in.emptyAt = now
				}
				break fill
			}
		}
		in.apply(in.emptyAt)
	}
}

// flush closes the rollup windows of nodes that stopped reporting, only
// while the service is caught up (connected, nothing waiting, no read of the
// stream pending): otherwise a node whose batches wait in the buffer would
// look silent. The rollups are settled like a group's effects.
func (in *ingest) flush() {
	if in.cfg.FlushGrace <= 0 || len(in.live) > 0 || !in.force.IsZero() || !in.a.NC.IsConnected() {
		return
	}
	if rs := in.a.Fleet.Flush(in.a.Now(), in.cfg.FlushGrace); len(rs) > 0 {
		in.applied <- appliedGroup{fx: fleet.Effects{Rollups: rs}}
	}
}

// missedSince is the time from which the stream is read after an
// interruption: everything still in the buffer, or dropped from it, arrived
// after the buffer was last seen empty with no drop or reconnect pending
// (emptyAt only moves then), less the margin.
func (in *ingest) missedSince() time.Time {
	t := in.lastLive
	if in.emptyAt.Before(t) {
		t = in.emptyAt
	}
	return t.Add(-in.cfg.ResumeMargin)
}

// resume reads the stream when the subscription may have missed batches:
// when add asked for it (a gap it could not fill, or an interruption seen
// while filling), or when the subscription dropped batches or the
// connection was re-established since the last look. A disconnect shows once
// the connection is back, a drop at the next look: either way the batches
// missed were stored after the last live group arrived (less the margin).
// The live batches put aside meanwhile are then added again.
func (in *ingest) resume(ctx context.Context) error {
	from := in.force
	if in.interrupted() {
		if t := in.missedSince(); from.IsZero() || t.Before(from) {
			from = t
		}
	}
	if from.IsZero() {
		return nil
	}
	in.force = time.Time{}
	if err := in.catchUp(ctx, from, true); err != nil {
		return err
	}
	deferred := in.deferred
	in.deferred = nil
	for _, m := range deferred {
		in.add(ctx, m, true)
	}
	in.apply(in.emptyAt)
	return nil
}

type nodeKey struct{ cluster, node string }

// nodeSeq is the last batch applied of one node, and its earlier boots.
type nodeSeq struct {
	boot    string
	seq     uint64
	dropped uint64
	at      time.Time
	// seen is when the batch arrived (live) or was stored (read from the
	// stream), on the service's and the server's clocks.
	seen time.Time
	old  []string // the boots before, newest last (at most maxOldBoots)
}

// readFrom is where a read of the node's batches after st starts: a minute
// before the earlier of its sample time (the agent's clock) and its arrival
// (the service's), so that neither clock running ahead skips a batch.
func (st *nodeSeq) readFrom() time.Time {
	t := st.at
	if !st.seen.IsZero() && st.seen.Before(t) {
		t = st.seen
	}
	return t.Add(-gapLookBack)
}

// maxOldBoots bounds the earlier boots remembered per node.
const maxOldBoots = 4

// take records b, seen at seen, as the node's last applied batch.
func (st *nodeSeq) take(b *events.GPUSampleBatch, seen time.Time) {
	if b.Boot != st.boot && st.boot != "" {
		if len(st.old) == maxOldBoots {
			st.old = st.old[1:]
		}
		st.old = append(st.old, st.boot)
	}
	st.boot, st.seq, st.dropped, st.at, st.seen = b.Boot, b.Seq, b.Dropped, b.At, seen
}

// ingest is the state of one Ingest; only Ingest's goroutine touches it,
// except applied (read by settle) and the counters.
type ingest struct {
	a    *API
	cfg  IngestConfig
	sub  *nats.Subscription
	live chan *nats.Msg
	dec  *samplejson.Decoder
	seqs map[nodeKey]*nodeSeq

	pool []*events.GPUSampleBatch // decoded batches, reused from group to group
	n    int                      // batches of pool in the current group
	ptrs []*events.GPUSampleBatch // the current group's accepted batches

	dropped    int    // the subscription's drops seen
	reconnects uint64 // the connection's reconnects seen
	lastLive   time.Time
	// emptyAt is when the subscription's buffer was last seen empty: every
	// batch received before it has been taken.
	emptyAt time.Time
	// force, when set, asks resume to read the stream from that time;
	// deferred are the live batches put aside until it has.
	force    time.Time
	deferred []*nats.Msg

	applied chan appliedGroup
}

// appliedGroup is a group applied to the fleet, waiting for its effects to
// be published; settled is the time its batches were stored by.
type appliedGroup struct {
	fx      fleet.Effects
	samples uint64
	settled time.Time
}

// interruptedSince reports, without taking note, whether interrupted would
// report true.
func (in *ingest) interruptedSince() bool {
	d, _ := in.sub.Dropped()
	return d != in.dropped || in.a.NC.Stats().Reconnects != in.reconnects
}

// interrupted reports whether the subscription may have missed batches since
// the last look: it dropped some, or the connection was re-established.
func (in *ingest) interrupted() bool {
	d, _ := in.sub.Dropped()
	r := in.a.NC.Stats().Reconnects
	if d == in.dropped && r == in.reconnects {
		return false
	}
	in.a.Log.Warn("sample subscription interrupted; reading the stream", "dropped", d-in.dropped, "reconnects", r-in.reconnects)
	in.dropped, in.reconnects = d, r
	return true
}

// slot returns an empty batch to decode into: pointers stay valid while the
// pool grows.
func (in *ingest) slot() *events.GPUSampleBatch {
	if in.n == len(in.pool) {
		in.pool = append(in.pool, &events.GPUSampleBatch{})
	}
	return in.pool[in.n]
}

// add decodes one batch and adds it to the group unless it was applied
// already. A live batch after which the node's sequence jumps has the node's
// missing batches read from the stream and added first; when that read
// fails, or the subscription was interrupted meanwhile, the batch is put
// aside and resume reads the stream.
func (in *ingest) add(ctx context.Context, m *nats.Msg, live bool) {
	in.addData(ctx, m.Data, m.Header, m, time.Now(), live)
}

func (in *ingest) addData(ctx context.Context, data []byte, hdr nats.Header, m *nats.Msg, seen time.Time, live bool) {
	b := in.slot()
	if err := in.decode(data, hdr, b); err != nil {
		in.a.Log.Warn("drop undecodable sample batch", "err", err)
		return
	}
	k := nodeKey{b.Cluster, b.Node}
	st := in.seqs[k]
	if st == nil {
		st = &nodeSeq{}
		in.seqs[k] = st
	} else if stale(st, b) {
		return // applied already
	}
	// A new boot starts at sequence 1: its earlier batches are its gap.
	from := st
	if b.Boot != st.boot {
		from = &nodeSeq{boot: b.Boot, at: st.at, seen: st.seen}
		if st.boot == "" { // never seen: what came before was read at start
			from = nil
		}
	}
	in.n++ // b's slot, from here on
	if live && from != nil && gap(from, b) > 0 {
		if in.interruptedSince() || !in.fillGap(ctx, k, from, b) {
			// Read the stream first; b comes again after it.
			in.n--
			in.deferred = append(in.deferred, m)
			if t := from.readFrom(); in.force.IsZero() || t.Before(in.force) {
				in.force = t
			}
			if t := in.missedSince(); t.Before(in.force) {
				in.force = t
			}
			return
		}
	}
	st.take(b, seen)
	in.ptrs = append(in.ptrs, b)
}

// decode decodes a batch and takes the agent's drop count as it was when
// the batch was sent (header egs-dropped) when that is higher.
func (in *ingest) decode(data []byte, hdr nats.Header, b *events.GPUSampleBatch) error {
	if err := in.dec.Decode(data, b); err != nil {
		return err
	}
	if v := hdr.Get(events.HeaderTelemetryDropped); v != "" {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && n > b.Dropped {
			b.Dropped = n
		}
	}
	return nil
}

// stale reports whether b was applied already: same boot and a sequence not
// higher, or a boot the node has left (read again from the stream after its
// agent restarted).
func stale(st *nodeSeq, b *events.GPUSampleBatch) bool {
	if b.Boot == st.boot {
		return b.Seq <= st.seq
	}
	return slices.Contains(st.old, b.Boot)
}

// gap is how many batches of the node are missing between st and b (same
// boot, b later) that its agent did not drop. A rise of the agent's drop
// count (as sent, see decode) explains the whole jump: the count does not
// say which batches were dropped.
func gap(st *nodeSeq, b *events.GPUSampleBatch) uint64 {
	if b.Dropped > st.dropped || b.Seq <= st.seq {
		return 0
	}
	return b.Seq - st.seq - 1
}

// fillGap adds the batches of node k between st and b, read from the
// stream, and reports whether the read succeeded (what it did not find is
// counted as missed).
func (in *ingest) fillGap(ctx context.Context, k nodeKey, st *nodeSeq, b *events.GPUSampleBatch) bool {
	subj, err := events.TelemetryGPUSubject(k.cluster, k.node)
	if err != nil {
		return true
	}
	want, found := gap(st, b), uint64(0)
	last := st.seq
	var lastBatch *events.GPUSampleBatch
	var lastStored time.Time
	mark := in.n
	err = in.read(ctx, subj, st.readFrom(), 0, func(m jetstream.Msg) bool {
		g := in.slot()
		if err := in.decode(m.Data(), m.Headers(), g); err != nil || g.Boot != b.Boot || g.Seq <= last || g.Seq >= b.Seq {
			return true
		}
		last, lastBatch = g.Seq, g
		if md, err := m.Metadata(); err == nil {
			lastStored = md.Timestamp
		}
		in.ptrs = append(in.ptrs, g)
		in.n++
		found++
		return found < want
	})
	if err != nil {
		// Nothing of this read is kept: resume reads it all again.
		in.ptrs = in.ptrs[:len(in.ptrs)-(in.n-mark)]
		in.n = mark
		in.a.Log.Warn("read a node's missing sample batches", "cluster", k.cluster, "node", k.node, "err", err)
		return false
	}
	if s := in.seqs[k]; s != nil && lastBatch != nil {
		s.take(lastBatch, lastStored)
	}
	if found < want {
		in.a.Missed.Add(want - found)
		in.a.Log.Warn("sample batches missing from the stream", "cluster", k.cluster, "node", k.node,
			"boot", b.Boot, "missing", want-found, "before_seq", b.Seq)
	}
	return true
}

// apply applies the current group to the fleet and hands its effects to
// settle; settled is the time its batches were stored by.
func (in *ingest) apply(settled time.Time) {
	if len(in.ptrs) == 0 {
		in.n = 0
		return
	}
	var samples uint64
	for _, b := range in.ptrs {
		samples += uint64(len(b.GPUs))
	}
	in.applied <- appliedGroup{fx: in.a.Fleet.Ingest(in.ptrs...), samples: samples, settled: settled}
	in.ptrs = in.ptrs[:0]
	in.n = 0
}

// catchUp reads the stream's sample batches stored from from (the zero time:
// all) to its end, applying those not applied yet, then applies what the
// subscription brought meanwhile through the live loop. A read that fails
// is retried from the time it reached: at start five times (then the
// service stops, with the error), later until ctx ends (JetStream may be
// recovering after a server restart).
func (in *ingest) catchUp(ctx context.Context, from time.Time, persistent bool) error {
	start := time.Now()
	read := 0
	for attempt := 0; ; attempt++ {
		// Up to what the stream holds now: what comes later is on the
		// subscription.
		var upTo uint64
		stream, err := in.a.JS.Stream(ctx, events.StreamTelemetry)
		if err == nil {
			st := stream.CachedInfo().State
			if st.Msgs == 0 || !from.IsZero() && st.LastTime.Before(from) {
				return nil
			}
			upTo = st.LastSeq
		}
		var last time.Time
		if err == nil {
			err = in.read(ctx, events.SubjectTelemetryGPUAll, from, upTo, func(m jetstream.Msg) bool {
				md, err := m.Metadata()
				if err != nil {
					return true
				}
				in.addData(ctx, m.Data(), m.Headers(), nil, md.Timestamp, false)
				read++
				last = md.Timestamp
				if in.n >= in.cfg.Group {
					in.apply(last)
				}
				return true
			})
		}
		in.apply(last)
		if err == nil {
			if read > 0 {
				in.a.Log.Info("read sample batches from the stream", "from", from, "batches", read,
					"took", time.Since(start).Round(time.Millisecond))
			}
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		if attempt == 4 && !persistent {
			return fmt.Errorf("read %s: %w", events.StreamTelemetry, err)
		}
		in.a.Log.Warn("read sample stream; retrying", "err", err, "attempt", attempt+1)
		if !last.IsZero() {
			from = last
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(min(time.Duration(attempt+1)*200*time.Millisecond, 5*time.Second)):
		}
	}
}

// read hands each message of EGS_TELEMETRY on filter stored from from (the
// zero time: all) to each, in order, until the stream's end, the message at
// stream sequence upTo (when not 0), or each returns false.
func (in *ingest) read(ctx context.Context, filter string, from time.Time, upTo uint64, each func(jetstream.Msg) bool) error {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverAllPolicy,
		InactiveThreshold: 10 * time.Second}
	if !from.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &from
	}
	in.a.Reads.Add(1)
	cons, err := in.a.JS.OrderedConsumer(ctx, events.StreamTelemetry, cfg)
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(max(in.cfg.Group, 64)))
	if err != nil {
		return err
	}
	defer it.Stop()
	// A quiet wait ends the read only when nothing is pending; otherwise the
	// server is slow (or the consumer was lost) and the caller retries.
	var pending uint64
	if info := cons.CachedInfo(); info != nil {
		pending = info.NumPending
	}
	for {
		wait := caughtUpWait
		if pending > 0 {
			wait = stalledAfter
		}
		nctx, cancel := context.WithTimeout(ctx, wait)
		m, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
			if pending == 0 {
				return nil // the stream's end
			}
			return fmt.Errorf("no message for %s with %d pending", wait, pending)
		case err != nil:
			return err
		}
		md, err := m.Metadata()
		if err != nil {
			return err
		}
		pending = md.NumPending
		if !each(m) || pending == 0 || upTo > 0 && md.Sequence.Stream >= upTo {
			return nil
		}
	}
}

// checkpoint returns the time to read the stream from at start: the stored
// checkpoint less Replay, or the zero time (all) without one.
func (in *ingest) checkpoint(ctx context.Context) (time.Time, error) {
	e, err := in.cfg.State.Get(ctx, CheckpointKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read checkpoint: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, string(e.Value()))
	if err != nil {
		in.a.Log.Warn("unreadable checkpoint; reading the whole stream", "value", string(e.Value()))
		return time.Time{}, nil
	}
	return t.Add(-in.cfg.Replay), nil
}

// settle publishes each applied group's effects, in order, and then moves
// the checkpoint to the group's time (written at most every second, and
// once more at the end). Once a group's effects could not be stored, the
// checkpoint stays where it was until the service restarts, which reads
// those batches again.
func (in *ingest) settle(ctx context.Context) {
	var out outgoing
	var settled, written time.Time
	var writtenAt time.Time
	var samples uint64
	stuck := false
	write := func() {
		writtenAt = time.Now()
		if settled.IsZero() || settled.Equal(written) {
			return
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := in.cfg.State.Put(wctx, CheckpointKey, []byte(settled.UTC().Format(time.RFC3339Nano))); err != nil {
			in.a.Log.Warn("write checkpoint", "err", err)
			return
		}
		written = settled
	}
	for g := range in.applied {
		in.a.effects(g.fx, &out)
		if err := in.a.publish(ctx, &out); err != nil && !stuck {
			stuck = true
			in.a.Log.Error("telemetry effects not stored; the checkpoint stays until a restart reads them again",
				"checkpoint", settled, "err", err)
		}
		samples += g.samples
		if !stuck && !g.settled.IsZero() {
			settled = g.settled
		}
		if in.cfg.OnSettled != nil {
			in.cfg.OnSettled(samples)
		}
		if time.Since(writtenAt) >= checkpointEvery {
			write()
		}
	}
	write()
}
