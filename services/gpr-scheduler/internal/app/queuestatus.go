package app

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/services/gpr-scheduler/internal/gpr"
	"github.com/open-egs/egs/services/gpr-scheduler/internal/queue"
)

// statusKey is what a queue-status event tells, less what changes with the
// clock alone (the wait shrinks; the estimated start does not).
type statusKey struct {
	position int
	start    int64
	reasons  string
}

// PublishQueueStatus pushes egs.queue.v1.<ws>.<gprId> for each of the first
// head GPRs of the queue whose position, estimated start or reasons changed
// since it was last pushed, and a last one (position 0) for each pushed GPR
// that has left the queue. It does nothing when nothing was written since
// its last run. GPRs behind the head are not pushed (their status is served
// on request): one admission moves every position, and a deep queue would
// otherwise answer each change with as many events as it holds.
func (s *Scheduler) PublishQueueStatus(ctx context.Context, head int) error {
	out, sent := s.queueStatus(head)
	if len(out) == 0 {
		return nil
	}
	if err := s.pub.PublishBatch(ctx, out); err != nil {
		s.mu.Lock()
		for _, id := range sent {
			delete(s.lastStatus, id) // pushed again next time
		}
		s.statusAt = -1
		s.mu.Unlock()
		return err
	}
	return nil
}

func (s *Scheduler) queueStatus(head int) ([]bus.Outgoing, []string) {
	// Under the lock, a copy of what the head needs; the pass and the
	// estimates run without it, so admissions go on meanwhile; the results
	// are compared and recorded under it again. A write in between makes the
	// statuses a little stale until the next round, which the version tells.
	s.mu.Lock()
	if s.statusAt == s.version {
		s.mu.Unlock()
		return nil, nil
	}
	s.statusAt = s.version
	now := s.now()
	q := make([]queue.Request, 0, min(max(head, 0), s.order.Len()))
	for r := range s.order.All() {
		if head > 0 && len(q) >= head {
			break
		}
		q = append(q, r)
	}
	snap := queue.Snapshot{Now: now, Queue: q, Sorted: true, Nodes: s.nodeList(), Holdings: s.buildHoldings(now)}
	total := s.order.Len()
	s.mu.Unlock()

	plan := queue.Schedule(snap)
	est := queue.Estimate(snap)

	s.mu.Lock()
	defer s.mu.Unlock()
	var out []bus.Outgoing
	var sent []string
	emit := func(ws, id string, st events.QueueStatus) {
		subject, err := events.QueueStatusSubject(ws, id)
		if err != nil {
			return
		}
		s.statusSeq++
		ev, err := bus.NewEvent(s.bootID+"."+strconv.FormatInt(s.statusSeq, 36), Source,
			events.EventType("queue", "status"), id, now, st)
		if err != nil {
			s.log.Warn("queue status event", logkey.GPRID, id, logkey.Err, err)
			return
		}
		out = append(out, bus.Outgoing{Subject: subject, Event: ev})
		sent = append(sent, id)
	}
	for _, r := range q {
		if _, queued := s.order.Get(r.ID); !queued {
			continue // left the queue meanwhile: told below
		}
		st := events.QueueStatus{GPRID: r.ID, Workspace: r.Workspace, Position: plan.Position[r.ID], Queued: total,
			PendingReasons: []events.PendingReason{}, At: now}
		var msgs []string
		for _, w := range plan.Waiting[r.ID] {
			st.PendingReasons = append(st.PendingReasons, events.PendingReason{Code: w.Code, Message: w.Message})
			msgs = append(msgs, w.Code+":"+w.Message)
		}
		key := statusKey{position: st.Position, reasons: strings.Join(msgs, "\n")}
		if at, ok := est[r.ID]; ok {
			st.EstimatedStart, key.start = &at, at.UnixNano()
		}
		last, pushed := s.lastStatus[r.ID]
		if pushed && last.key == key {
			continue
		}
		if pushed && last.key.start != 0 && key.start > last.key.start {
			s.delays[r.ID]++
		}
		if e, ok := s.recs[r.ID]; ok {
			st.DelayedCount = e.rec.DelayedCount + s.delays[r.ID]
		}
		s.lastStatus[r.ID] = pushedStatus{key: key, workspace: r.Workspace}
		emit(r.Workspace, r.ID, st)
	}
	for id, last := range s.lastStatus {
		if _, queued := s.order.Get(id); queued {
			continue
		}
		delete(s.lastStatus, id)
		if e, ok := s.recs[id]; !ok || e.rec.State != gpr.Queued && !e.rec.Active() {
			delete(s.delays, id) // cancelled, rejected or awaiting approval: nothing to fold them into
		}
		emit(last.workspace, id, events.QueueStatus{GPRID: id, Workspace: last.workspace, Queued: total,
			PendingReasons: []events.PendingReason{}, At: now})
	}
	return out, sent
}

// pushedStatus is the last queue status pushed for a GPR.
type pushedStatus struct {
	key       statusKey
	workspace string
}

// QueueStatusLoop pushes queue statuses every interval until ctx ends. A
// round that took long (a deep head on a large inventory) stretches the wait
// so that statuses never take more than a tenth of the time.
func (s *Scheduler) QueueStatusLoop(ctx context.Context, interval time.Duration, head int) error {
	wait := interval
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		started := time.Now()
		if err := s.PublishQueueStatus(ctx, head); err != nil && ctx.Err() == nil {
			s.log.Warn("queue status; will retry", logkey.Err, err)
		}
		wait = max(interval, 9*time.Since(started))
	}
}
