package app

import (
	"context"
	"time"

	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/libs/rpc"

	"github.com/open-egs/egs/services/gpr-scheduler/internal/gpr"
	"github.com/open-egs/egs/services/gpr-scheduler/internal/queue"
)

// Move moves a queued GPR one place up or down the queue (admins and
// Owners). It trades places with its neighbour in queue order:
//   - a neighbour of the same priority swaps ranks with it (both records are
//     written, each with an updated event);
//   - a neighbour of another priority lends it its priority: moving up past
//     the last GPR of a higher priority makes the GPR the last but one of
//     that priority, moving down past the first of a lower priority makes it
//     the first of that priority.
//
// Moving the first GPR up or the last down is a 409.
func (s *Scheduler) Move(ctx context.Context, req rpc.MoveGPRRequest) (rpc.Empty, error) {
	if req.Caller.Role != "Owner" && req.Caller.Role != "admin" {
		return rpc.Empty{}, rpc.Errorf(rpc.Forbidden, "only an Owner or an admin may reorder the queue")
	}
	up := req.Direction == rpc.MoveUp
	if !up && req.Direction != rpc.MoveDown {
		return rpc.Empty{}, rpc.Errorf(rpc.Invalid, "direction must be %q or %q", rpc.MoveUp, rpc.MoveDown)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.find(req.Caller, req.GPRID)
	if err != nil {
		return rpc.Empty{}, err
	}
	if e.rec.State != gpr.Queued {
		return rpc.Empty{}, conflict(e.rec.Move(0, time.Time{}, "", s.now()))
	}
	me, _ := s.order.Get(e.rec.ID)
	var other queue.Request
	var ok bool
	if up {
		other, ok = s.order.Before(me)
	} else {
		other, ok = s.order.After(me)
	}
	if !ok {
		where := "first"
		if !up {
			where = "last"
		}
		return rpc.Empty{}, rpc.Errorf(rpc.Conflict, "GPR %s is already %s in the queue", e.rec.ID, where)
	}
	o, found := s.recs[other.ID]
	if !found {
		return rpc.Empty{}, rpc.Errorf(rpc.Internal, "queue neighbour %s has no record", other.ID)
	}
	why := "moved " + req.Direction + " the queue by " + req.Caller.Subject
	now := s.now()
	myRank, otherRank, otherPrio := other.CreatedAt, me.CreatedAt, other.Priority
	if other.Priority != me.Priority {
		// The neighbour is the last (moving up) or first (moving down) of
		// its priority: take its priority and place, and nudge it by a
		// nanosecond so that it stays on the far side.
		otherRank = other.CreatedAt.Add(time.Nanosecond)
		if !up {
			otherRank = other.CreatedAt.Add(-time.Nanosecond)
		}
	}
	if err := s.moveOne(ctx, e, otherPrio, myRank, why, now); err != nil {
		return rpc.Empty{}, err
	}
	if err := s.moveOne(ctx, o, o.rec.Spec.Priority, otherRank, "moved by "+req.Caller.Subject+" to make room for "+e.rec.ID, now); err != nil {
		s.log.Warn("move: the neighbour keeps its place", logkey.GPRID, o.rec.ID, logkey.Err, err)
	}
	if err := s.send(ctx); err != nil {
		s.log.Warn("publish; will retry", logkey.GPRID, e.rec.ID, logkey.Err, err)
	}
	s.Wake()
	return rpc.Empty{}, nil
}

func (s *Scheduler) moveOne(ctx context.Context, e *entry, prio int, rank time.Time, why string, now time.Time) error {
	before := *e.rec
	if err := e.rec.Move(prio, rank, why, now); err != nil {
		return conflict(err)
	}
	if err := s.commit(ctx, e, before); err != nil {
		return err
	}
	s.stage(e)
	return nil
}
