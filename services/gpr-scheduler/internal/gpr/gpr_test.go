package gpr

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/open-egs/egs/libs/events"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func newRec() *Record {
	return New("gpr-00000000-0001", "train", "ws", Spec{GPUsPerNode: 8, Nodes: 2, Priority: 150, ExitDuration: time.Hour}, t0)
}

func eventsOf(r *Record) []events.GPREvent {
	var out []events.GPREvent
	for _, e := range r.Outbox {
		out = append(out, e.Event)
	}
	return out
}

func TestLifecycleEarlyRelease(t *testing.T) {
	r := newRec()
	if err := r.Admit("c1", []string{"n1", "n2"}, Shape{}, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := r.ProvisioningStatus() + "/" + r.InternalState(); got != "Queued/Reserved" {
		t.Fatalf("provisioning: status %s", got)
	}
	if !r.Provisioned(t0.Add(2 * time.Second)) {
		t.Fatal("Provisioned refused")
	}
	if r.Provisioned(t0.Add(3 * time.Second)) {
		t.Fatal("a duplicate applied report changed the GPR")
	}
	if got := r.ProvisioningStatus(); got != "Successful" {
		t.Fatalf("status %s, want Successful", got)
	}
	if got, want := r.ExpiresAt, t0.Add(2*time.Second+time.Hour); !got.Equal(want) {
		t.Fatalf("ExpiresAt %v, want %v", got, want)
	}
	if got := r.GPUsAllocated(); got != 16 {
		t.Fatalf("GPUsAllocated %d, want 16", got)
	}
	if err := r.Release(ReasonEarlyRelease, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if !r.EarlyRelease || r.ProvisioningStatus() != "EarlyReleased" {
		t.Fatalf("after early release: earlyRelease %v status %s", r.EarlyRelease, r.ProvisioningStatus())
	}
	if !r.Released(t0.Add(time.Minute + time.Second)) {
		t.Fatal("Released refused")
	}
	want := []events.GPREvent{events.GPRCreated, events.GPRQueued, events.GPRAdmitted, events.GPRProvisioned, events.GPRReleased, events.GPRCompleted}
	if diff := cmp.Diff(want, eventsOf(r)); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	for i, e := range r.Outbox {
		if e.Seq != i+1 {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
	if got := r.ProvisioningStatus() + "/" + r.InternalState(); got != "EarlyReleased/Released" {
		t.Fatalf("final status %s", got)
	}
}

func TestRefusals(t *testing.T) {
	var na *NotAllowedError
	tests := map[string]struct {
		setup func(r *Record)
		op    func(r *Record) error
		msg   string
	}{
		"early release while queued": {
			setup: func(*Record) {},
			op:    func(r *Record) error { return r.Release(ReasonEarlyRelease, t0) },
			msg:   "Cannot update early release of GPR in Queued state",
		},
		"delete while provisioned": {
			setup: func(r *Record) { _ = r.Admit("c1", []string{"n1"}, Shape{}, t0); r.Provisioned(t0) },
			op:    func(r *Record) error { _, err := r.Cancel(t0); return err },
			msg:   "Cannot delete GPR in Successful state",
		},
		"early release twice": {
			setup: func(r *Record) {
				_ = r.Admit("c1", []string{"n1"}, Shape{}, t0)
				r.Provisioned(t0)
				_ = r.Release(ReasonEarlyRelease, t0)
			},
			op:  func(r *Record) error { return r.Release(ReasonEarlyRelease, t0) },
			msg: "Cannot update early release of GPR in EarlyReleased state",
		},
		"update after completion": {
			setup: func(r *Record) {
				_ = r.Admit("c1", []string{"n1"}, Shape{}, t0)
				r.Provisioned(t0)
				_ = r.Release(ReasonExpired, t0)
				r.Released(t0)
			},
			op:  func(r *Record) error { p := 5; return r.Update(&p, nil, t0) },
			msg: "Cannot update GPR in Complete state",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := newRec()
			tc.setup(r)
			before := *r
			err := tc.op(r)
			if !errors.As(err, &na) || na.Msg != tc.msg {
				t.Fatalf("got %v, want NotAllowedError %q", err, tc.msg)
			}
			if r.State != before.State || r.Seq != before.Seq {
				t.Fatalf("a refused operation changed the GPR: %s/%d → %s/%d", before.State, before.Seq, r.State, r.Seq)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	r := newRec()
	done, err := r.Cancel(t0)
	if err != nil || !done || r.State != Cancelled {
		t.Fatalf("cancel queued: done %v err %v state %s", done, err, r.State)
	}
	r = newRec()
	_ = r.Admit("c1", []string{"n1"}, Shape{}, t0)
	done, err = r.Cancel(t0)
	if err != nil || done || r.State != Releasing {
		t.Fatalf("cancel provisioning: done %v err %v state %s", done, err, r.State)
	}
	r.Released(t0)
	if r.State != Cancelled || r.Outbox[len(r.Outbox)-1].Event != events.GPRCancelled {
		t.Fatalf("after removal: state %s last event %s", r.State, r.Outbox[len(r.Outbox)-1].Event)
	}
}

func TestFailRequeue(t *testing.T) {
	r := newRec()
	r.Spec.RequeueOnFailure = true
	_ = r.Admit("c1", []string{"n1"}, Shape{}, t0)
	r.Fail("node gone", t0)
	if r.State != Queued || r.RetryCount != 1 || len(r.Nodes) != 0 {
		t.Fatalf("requeue: state %s retries %d nodes %v", r.State, r.RetryCount, r.Nodes)
	}
	r = newRec()
	_ = r.Admit("c1", []string{"n1"}, Shape{}, t0)
	r.Fail("node gone", t0)
	if r.State != Failed || r.ProvisioningStatus() != "Error" || r.FailureReason != "node gone" {
		t.Fatalf("fail: state %s status %s reason %q", r.State, r.ProvisioningStatus(), r.FailureReason)
	}
}

func TestMilestones(t *testing.T) {
	r := newRec()
	_ = r.Admit("c1", []string{"n1"}, Shape{}, t0)
	r.Provisioned(t0)
	if pct := r.DueMilestone(t0.Add(14 * time.Minute)); pct != 0 {
		t.Fatalf("milestone at 14m: %d", pct)
	}
	if pct := r.DueMilestone(t0.Add(15 * time.Minute)); pct != 25 {
		t.Fatalf("milestone at 15m: %d, want 25", pct)
	}
	r.Milestone(25, t0.Add(15*time.Minute))
	if pct := r.DueMilestone(t0.Add(50 * time.Minute)); pct != 50 {
		t.Fatalf("milestone at 50m: %d, want 50", pct)
	}
	last := r.Outbox[len(r.Outbox)-1]
	if last.Event != events.GPRMilestone || last.Percent != 25 {
		t.Fatalf("milestone event %+v", last)
	}
	r.Milestone(50, t0.Add(50*time.Minute))
	r.Milestone(75, t0.Add(50*time.Minute))
	// A 1h reservation: the exit warning is due 5 minutes before its end.
	if got, want := r.NextMilestoneAt(), t0.Add(55*time.Minute); !got.Equal(want) {
		t.Fatalf("next milestone at %v, want %v", got, want)
	}
	if r.DueExitWarning(t0.Add(54*time.Minute)) || !r.DueExitWarning(t0.Add(55*time.Minute)) {
		t.Fatal("exit warning not due exactly 5 minutes before exit")
	}
	r.ExitWarning(t0.Add(55 * time.Minute))
	if last := r.Outbox[len(r.Outbox)-1]; last.Event != events.GPRExpiring {
		t.Fatalf("exit warning event %+v", last)
	}
	if r.DueExitWarning(t0.Add(56*time.Minute)) || !r.NextMilestoneAt().IsZero() {
		t.Fatal("exit warning due twice")
	}
	// A 10-minute reservation is warned a tenth of it (1 minute) before its end.
	short := newRec()
	short.Spec.ExitDuration = 10 * time.Minute
	_ = short.Admit("c1", []string{"n1"}, Shape{}, t0)
	short.Provisioned(t0)
	if got, want := short.ExitWarningAt(), t0.Add(9*time.Minute); !got.Equal(want) {
		t.Fatalf("short exit warning at %v, want %v", got, want)
	}
}

func TestEvictedRequeueOrEnd(t *testing.T) {
	for _, requeue := range []bool{true, false} {
		r := newRec()
		r.Spec.RequeueOnFailure = requeue
		_ = r.Admit("c1", []string{"n1"}, Shape{}, t0)
		r.Provisioned(t0)
		if err := r.Release(ReasonEvictedBy+"gpr-boss", t0); err != nil {
			t.Fatal(err)
		}
		r.Released(t0)
		if r.EvictedBy != "gpr-boss" {
			t.Fatalf("EvictedBy %q", r.EvictedBy)
		}
		last := r.Outbox[len(r.Outbox)-1].Event
		switch {
		case requeue && (r.State != Queued || r.ProvisioningStatus() != "Queued" || r.RetryCount != 1 || len(r.Nodes) != 0 || last != events.GPRQueued):
			t.Fatalf("requeued eviction: state %s status %s retries %d nodes %v last %s", r.State, r.ProvisioningStatus(), r.RetryCount, r.Nodes, last)
		case !requeue && (r.State != Evicted || r.ProvisioningStatus() != "Error" || r.FailureReason != "evicted by gpr-boss" || last != events.GPREvicted):
			t.Fatalf("final eviction: state %s status %s reason %q last %s", r.State, r.ProvisioningStatus(), r.FailureReason, last)
		}
	}
}

func TestApproval(t *testing.T) {
	spec := Spec{GPUsPerNode: 8, Nodes: 1, Priority: 150, ExitDuration: time.Hour}
	r := NewPending("gpr-00000000-0002", "big", "ws", spec, []string{"too many GPUs"}, t0)
	if r.State != PendingApproval || r.ProvisioningStatus() != "Queued" || r.InternalState() != "Queued" {
		t.Fatalf("pending: %s %s/%s", r.State, r.ProvisioningStatus(), r.InternalState())
	}
	if err := r.Admit("c1", []string{"n1"}, Shape{}, t0); err == nil {
		t.Fatal("a GPR awaiting approval was admitted")
	}
	if err := r.Approve("admin", t0); err != nil || r.State != Queued {
		t.Fatalf("approve: %v, state %s", err, r.State)
	}
	if err := r.Approve("admin", t0); err == nil {
		t.Fatal("approved twice")
	}
	want := []events.GPREvent{events.GPRCreated, events.GPRPendingApproval, events.GPRQueued}
	if diff := cmp.Diff(want, eventsOf(r)); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}

	r = NewPending("gpr-00000000-0003", "big", "ws", spec, []string{"too long"}, t0)
	if err := r.Reject("admin", "not this week", t0); err != nil {
		t.Fatal(err)
	}
	if r.State != Rejected || !r.Final() || r.ProvisioningStatus() != "Error" || r.FailureReason != "rejected by admin: not this week" {
		t.Fatalf("rejected: %s %s %q", r.State, r.ProvisioningStatus(), r.FailureReason)
	}
}
