package app

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"

	"github.com/open-egs/egs/services/gpr-scheduler/internal/gpr"
	"github.com/open-egs/egs/services/gpr-scheduler/internal/queue"
)

// Loop runs scheduling passes until ctx ends: after every wake-up, at the next
// expiry or milestone, and at least every retry interval (to retry what
// failed). Passes start at most once per gap, so a burst of changes (a
// hundred nodes coming back) is decided in a few passes, not a hundred.
// When idle (no wake-up for a retry interval) it trims stored outboxes.
func (s *Scheduler) Loop(ctx context.Context, retry, gap time.Duration) error {
	for {
		started := time.Now()
		next := s.pass(ctx)
		wait := retry
		if !next.IsZero() {
			if d := next.Sub(s.now()); d < wait {
				wait = max(d, time.Millisecond)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.wake:
		case <-t.C:
			s.tidy(ctx, 256) // a quiet moment
		}
		t.Stop()
		if d := gap - time.Since(started); d > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(d):
			}
		}
	}
}

// pass does one round of work and returns when the next timed work is due
// (zero if none).
func (s *Scheduler) pass(ctx context.Context) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var next time.Time
	soon := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	defer func() {
		if err := s.send(ctx); err != nil {
			s.log.Warn("publish; will retry", logkey.Err, err)
		}
	}()
	s.out = append(s.out, s.retryCmds...)
	s.retryCmds = nil
	for _, e := range s.unsent {
		s.stage(e)
	}
	for _, e := range s.active {
		if e.rec.State == gpr.Provisioning || e.rec.State == gpr.Releasing {
			// No report yet: the command or its report may have been
			// dead-lettered. Send it again (idempotent) now and then.
			if due := e.sentAt.Add(s.resend); !now.Before(due) {
				verb, seq := events.CommandApply, e.rec.AdmitSeq
				if e.rec.State == gpr.Releasing {
					verb, seq = events.CommandRemove, e.rec.ReleaseSeq
				}
				s.stageCommand(verb, e.rec, seq, "t"+strconv.FormatInt(now.UnixMilli(), 36))
				e.sentAt = now
			}
			soon(e.sentAt.Add(s.resend))
			continue
		}
		if e.rec.State != gpr.Provisioned {
			continue
		}
		if !now.Before(e.rec.ExpiresAt) {
			s.release(ctx, e, gpr.ReasonExpired, now)
			continue
		}
		pct, warn := e.rec.DueMilestone(now), e.rec.DueExitWarning(now)
		if pct > 0 || warn {
			before := *e.rec
			if pct > 0 {
				e.rec.Milestone(pct, now)
			} else {
				e.rec.ExitWarning(now)
			}
			if err := s.commit(ctx, e, before); err != nil {
				s.log.Warn("store milestone", logkey.GPRID, e.rec.ID, logkey.Err, err)
			} else {
				s.stage(e)
			}
		}
		soon(e.rec.ExpiresAt)
		if at := e.rec.NextMilestoneAt(); !at.IsZero() {
			soon(at)
		}
	}
	if len(s.nodes) == 0 {
		return next
	}
	if !s.mayAdmit() {
		return next
	}
	plan := queue.Decide(s.decideSnapshot(now))
	for _, ev := range plan.Evict {
		if e, ok := s.recs[ev.Victim]; ok && e.rec.State == gpr.Provisioned {
			s.log.Info("evicting", logkey.GPRID, ev.Victim, "by", ev.By)
			s.release(ctx, e, gpr.ReasonEvictedBy+ev.By, now)
		}
	}
	for _, a := range plan.Admit {
		s.admit(ctx, a, now)
	}
	return next
}

// mayAdmit reports whether a pass could admit or evict anything: a free
// schedulable node, nodes on their way back, or an evictable GPR. With none
// (a full cluster, however deep the queue) the pass is skipped.
func (s *Scheduler) mayAdmit() bool {
	if len(s.free) > 0 {
		return true
	}
	for _, e := range s.active {
		if e.rec.State == gpr.Releasing || e.rec.State == gpr.Provisioned && e.rec.Spec.EnableEviction {
			return true
		}
	}
	return false
}

func (s *Scheduler) release(ctx context.Context, e *entry, reason string, now time.Time) {
	before := *e.rec
	if err := e.rec.Release(reason, now); err != nil {
		return
	}
	if err := s.commit(ctx, e, before); err != nil {
		s.log.Warn("store release; will retry", logkey.GPRID, e.rec.ID, logkey.Err, err)
		return
	}
	s.stage(e)
	s.stageCommand(events.CommandRemove, e.rec, e.rec.ReleaseSeq, "")
	e.sentAt = now
}

func (s *Scheduler) admit(ctx context.Context, a queue.Admission, now time.Time) {
	e, ok := s.recs[a.GPRID]
	if !ok || e.rec.State != gpr.Queued {
		return
	}
	if err := s.reserve(ctx, e.rec, a.Cluster, a.Nodes); err != nil {
		s.log.Warn("reserve nodes; next pass", logkey.GPRID, e.rec.ID, logkey.Err, err)
		return
	}
	before := *e.rec
	e.rec.DelayedCount += s.delays[e.rec.ID]
	var shape gpr.Shape
	if n, ok := s.nodes[a.Cluster+"/"+firstOr(a.Nodes)]; ok {
		shape = gpr.Shape{InstanceType: n.InstanceType, GPUProduct: n.GPUProduct, MemoryGB: n.GPUMemoryGB}
	}
	if err := e.rec.Admit(a.Cluster, a.Nodes, shape, now); err != nil {
		s.log.Error("admit", logkey.GPRID, e.rec.ID, logkey.Err, err)
		return
	}
	if err := s.commit(ctx, e, before); err != nil {
		if e.rec.State == gpr.Queued { // not stored: give the nodes back
			if ferr := s.freeNodesOf(ctx, e.rec); ferr != nil {
				s.log.Warn("free reservation; the sweep will", logkey.GPRID, e.rec.ID, logkey.Err, ferr)
			}
		}
		s.log.Warn("store admission", logkey.GPRID, e.rec.ID, logkey.Err, err)
		return
	}
	delete(s.delays, e.rec.ID)
	s.crash(CrashAfterAdmit)
	s.stage(e)
	s.stageCommand(events.CommandApply, e.rec, e.rec.AdmitSeq, "")
	e.sentAt = now
}

// OnProvision handles the provisioner's reports. Reports that do not match
// what the GPR waits for (duplicates, stale ones) are acknowledged and ignored.
func (s *Scheduler) OnProvision(ctx context.Context, ev bus.Event, msg jetstream.Msg) error {
	var res events.ProvisionResult
	if err := ev.Decode(&res); err != nil {
		return bus.Permanent(err)
	}
	kind := msg.Subject()[strings.LastIndexByte(msg.Subject(), '.')+1:]
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.recs[res.GPRID]
	if !ok {
		return nil
	}
	now := s.now()
	before := *e.rec
	switch kind {
	case events.ProvisionApplied:
		if res.Seq != e.rec.AdmitSeq || !e.rec.Provisioned(now) {
			return nil
		}
	case events.ProvisionRemoved:
		if res.Seq != e.rec.ReleaseSeq || e.rec.State != gpr.Releasing {
			return nil
		}
		if err := s.freeNodesOf(ctx, e.rec); err != nil {
			return err
		}
		e.rec.Released(now)
	case events.ProvisionFailed:
		if res.Seq != e.rec.AdmitSeq || e.rec.State != gpr.Provisioning {
			return nil
		}
		if err := s.freeNodesOf(ctx, e.rec); err != nil {
			return err
		}
		// Some nodes may have been handed over before the failure: take
		// them back (remove only touches nodes labelled for this GPR).
		undo := *e.rec
		e.rec.Fail(res.Error, now)
		s.stageCommand(events.CommandRemove, &undo, res.Seq, "failed")
	default:
		return bus.Permanent(fmt.Errorf("unknown provision report %q", msg.Subject()))
	}
	if err := s.commit(ctx, e, before); err != nil {
		return err
	}
	s.stage(e)
	if err := s.send(ctx); err != nil {
		s.log.Warn("publish gpr events; will retry", logkey.GPRID, e.rec.ID, logkey.Err, err)
	}
	if kind != events.ProvisionApplied { // nodes came back (or never went): a pass may admit
		s.Wake()
	}
	return nil
}

// WatchInventory mirrors the provisioner's inventory bucket. It calls loaded
// once the initial values are in, then follows changes until ctx ends.
func (s *Scheduler) WatchInventory(ctx context.Context, kv jetstream.KeyValue, loaded func()) error {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch inventory: %w", err)
	}
	defer func() { _ = w.Stop() }()
	initial := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case u, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("inventory watch closed")
			}
			if u == nil {
				if initial {
					initial = false
					loaded()
					s.Wake()
				}
				continue
			}
			if s.applyInventory(u) && !initial {
				s.Wake()
			}
		}
	}
}

// applyInventory updates the node mirror and reports whether anything the
// queue looks at changed (a hand-over only changes labels: no new pass).
func (s *Scheduler) applyInventory(u jetstream.KeyValueEntry) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.Operation() != jetstream.KeyValuePut {
		for k, n := range s.nodes {
			if events.NodeKey(n.Cluster, n.Name) == u.Key() {
				delete(s.nodes, k)
				s.nodeCache = nil
				s.nodeChanged(k)
				s.analysis = nil
				return true
			}
		}
		return false
	}
	var n events.Node
	if err := json.Unmarshal(u.Value(), &n); err != nil {
		s.log.Warn("undecodable inventory entry", "key", u.Key(), logkey.Err, err)
		return false
	}
	q := queue.Node{Cluster: n.Cluster, Name: n.Name, InstanceType: n.InstanceType, GPUProduct: n.GPUProduct,
		GPUMemoryGB: n.GPUMemoryGB, GPUCount: n.GPUCount, Schedulable: n.Healthy() && n.Managed}
	if old, ok := s.nodes[q.Key()]; ok && old == q {
		return false
	}
	s.nodes[q.Key()] = q
	s.nodeCache = nil
	s.nodeChanged(q.Key())
	s.analysis = nil
	return true
}

// OnWorkspaceDeleted ends the GPRs of a deleted workspace: queued ones are
// cancelled, those holding nodes give them back (reason workspace-deleted).
func (s *Scheduler) OnWorkspaceDeleted(ctx context.Context, ev bus.Event, _ jetstream.Msg) error {
	var w events.Workspace
	if err := ev.Decode(&w); err != nil {
		return bus.Permanent(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleted[w.Name] = true
	now := s.now()
	for _, e := range slices.Collect(maps.Values(s.live[w.Name])) {
		if e.rec.Final() || e.rec.State == gpr.Releasing {
			continue
		}
		before := *e.rec
		remove := false
		if e.rec.State == gpr.Queued {
			if _, err := e.rec.Cancel(now); err != nil {
				return err
			}
		} else {
			if err := e.rec.Release(gpr.ReasonWorkspaceDeleted, now); err != nil {
				return err
			}
			remove = true
		}
		if err := s.commit(ctx, e, before); err != nil {
			return err
		}
		s.stage(e)
		if remove {
			s.stageCommand(events.CommandRemove, e.rec, e.rec.ReleaseSeq, "")
			e.sentAt = now
		}
	}
	if err := s.send(ctx); err != nil {
		s.log.Warn("publish; will retry", logkey.Workspace, w.Name, logkey.Err, err)
	}
	s.Wake()
	return nil
}

// OnIdle releases a provisioned GPR whose GPUs the telemetry service found
// idle for its idleTimeOutDuration, when the GPR enforces its idle timeout.
func (s *Scheduler) OnIdle(ctx context.Context, ev bus.Event, _ jetstream.Msg) error {
	var idle events.GPRIdle
	if err := ev.Decode(&idle); err != nil {
		return bus.Permanent(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.recs[idle.GPRID]
	if !ok || e.rec.State != gpr.Provisioned || !e.rec.Spec.EnforceIdleTimeout {
		return nil
	}
	// A report about an earlier provisioning of the same GPR (it was requeued
	// since) does not count.
	if idle.IdleSince.Before(e.rec.StartedAt) {
		return nil
	}
	s.release(ctx, e, gpr.ReasonIdleTimeout, s.now())
	if err := s.send(ctx); err != nil {
		s.log.Warn("publish; will retry", logkey.GPRID, e.rec.ID, logkey.Err, err)
	}
	s.Wake()
	return nil
}
