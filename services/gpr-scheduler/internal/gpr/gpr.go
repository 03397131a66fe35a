// Package gpr is the GPU Provision Request: its spec, its state machine and
// the events each transition emits. It knows nothing of NATS or HTTP.
//
// State diagram (reasons in brackets):
//
//	Queued ──admit──▶ Provisioning ──applied──▶ Provisioned ──release[expired|early-release|idle-timeout]──▶ Releasing ──removed──▶ Complete
//	  │                  │   └──failed──▶ Failed, or Queued when requeueOnFailure
//	  └─cancel─▶ Cancelled  └──cancel──▶ Releasing[cancelled] ──removed──▶ Cancelled
//
//	Provisioned ──evict──▶ Releasing[evicted-by:<gpr>] ──removed──▶ Queued (requeueOnFailure) or Evicted
//
// Every transition appends its event to the record's outbox in the same write
// as the new state, so a crash can neither lose an event nor emit one for a
// state that was never stored.
package gpr

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/open-egs/egs/libs/events"
)

// State is a state of the machine above.
type State string

// The states.
const (
	PendingApproval State = "PendingApproval"
	Queued          State = "Queued"
	Provisioning    State = "Provisioning"
	Provisioned     State = "Provisioned"
	Releasing       State = "Releasing"
	Complete        State = "Complete"
	Failed          State = "Failed"
	Evicted         State = "Evicted"
	Rejected        State = "Rejected"
	Cancelled       State = "Cancelled"
)

// Release reasons: why a GPR gave its nodes back.
const (
	ReasonExpired          = "expired"
	ReasonEarlyRelease     = "early-release"
	ReasonIdleTimeout      = "idle-timeout"
	ReasonCancelled        = "cancelled"
	ReasonWorkspaceDeleted = "workspace-deleted"
	// ReasonEvictedBy prefixes the id of the GPR an eviction made room for.
	ReasonEvictedBy = "evicted-by:"
)

// Spec is what was asked for, validated and resolved against the workspace.
type Spec struct {
	GPUsPerNode        int           `json:"gpusPerNode"`
	Nodes              int           `json:"nodes"`
	InstanceType       string        `json:"instanceType"`
	GPUShape           string        `json:"gpuShape"`
	MemoryPerGPU       int           `json:"memoryPerGpu"`
	Priority           int           `json:"priority"`
	Clusters           []string      `json:"clusters"` // candidates, in order of preference
	AutoGPU            bool          `json:"autoGpu"`
	ExitDuration       time.Duration `json:"exitDuration"`
	IdleTimeout        time.Duration `json:"idleTimeout"`
	EnforceIdleTimeout bool          `json:"enforceIdleTimeout"`
	EnableEviction     bool          `json:"enableEviction"`
	RequeueOnFailure   bool          `json:"requeueOnFailure"`
	AllowedShapes      []string      `json:"allowedShapes,omitempty"` // the workspace policy's, when set
}

// Shape describes the nodes a GPR was given (auto-selection leaves the spec's
// shape empty; the answer shows what was chosen).
type Shape struct {
	InstanceType string `json:"instanceType"`
	GPUProduct   string `json:"gpuProduct"`
	MemoryGB     int    `json:"memoryGB"`
}

// Record is a GPR as the scheduler stores it (one KV entry per GPR).
type Record struct {
	ID            string       `json:"id"`
	Name          string       `json:"name"`
	Workspace     string       `json:"workspace"`
	Spec          Spec         `json:"spec"`
	State         State        `json:"state"`
	Reason        string       `json:"reason"`
	FailureReason string       `json:"failureReason"`
	EarlyRelease  bool         `json:"earlyRelease"`
	Cluster       string       `json:"cluster"`
	Nodes         []string     `json:"nodes"`
	Shape         Shape        `json:"shape"` // of the nodes given, once admitted
	CreatedAt     time.Time    `json:"createdAt"`
	Rank          time.Time    `json:"rank,omitzero"` // orders it among GPRs of its priority; zero: CreatedAt
	AdmittedAt    time.Time    `json:"admittedAt"`
	StartedAt     time.Time    `json:"startedAt"`
	ExpiresAt     time.Time    `json:"expiresAt"`
	CompletedAt   time.Time    `json:"completedAt"`
	Milestones    int          `json:"milestones"` // milestones emitted: 0..3 (25, 50, 75 %), 4 once the exit warning is out
	RetryCount    int          `json:"retryCount"`
	DelayedCount  int          `json:"delayedCount"` // times its estimated start moved later while it waited
	EvictedBy     string       `json:"evictedBy,omitempty"`
	OverPolicy    []string     `json:"overPolicy,omitempty"` // why it awaits approval
	AdmitSeq      int          `json:"admitSeq"`             // seq of the admitted event: names the apply command
	ReleaseSeq    int          `json:"releaseSeq"`           // seq of the released event: names the remove command
	Seq           int          `json:"seq"`                  // seq of the last event emitted
	Outbox        []events.GPR `json:"outbox,omitempty"`
}

// NotAllowedError refuses an operation in the GPR's current state. Its message
// is the EGS contract's text.
type NotAllowedError struct{ Msg string }

func (e *NotAllowedError) Error() string { return e.Msg }

// New returns a queued GPR; its outbox holds created and queued.
func New(id, name, workspace string, spec Spec, now time.Time) *Record {
	r := &Record{ID: id, Name: name, Workspace: workspace, Spec: spec, State: Queued, CreatedAt: now, Nodes: []string{}}
	r.emit(events.GPRCreated, "created", now)
	r.emit(events.GPRQueued, "waiting for capacity", now)
	return r
}

// NewPending returns a GPR that exceeds its workspace's policy: it waits for
// an admin's decision; its outbox holds created and pending-approval.
func NewPending(id, name, workspace string, spec Spec, overPolicy []string, now time.Time) *Record {
	r := &Record{ID: id, Name: name, Workspace: workspace, Spec: spec, State: PendingApproval, CreatedAt: now,
		Nodes: []string{}, OverPolicy: slices.Clone(overPolicy)}
	r.emit(events.GPRCreated, "created", now)
	r.emit(events.GPRPendingApproval, "over policy: "+strings.Join(overPolicy, "; "), now)
	return r
}

// Approve queues a GPR that awaited approval.
func (r *Record) Approve(by string, now time.Time) error {
	if r.State != PendingApproval {
		return &NotAllowedError{Msg: fmt.Sprintf("Cannot approve GPR in %s state", r.ProvisioningStatus())}
	}
	r.State, r.OverPolicy = Queued, nil
	r.emit(events.GPRQueued, "approved by "+by, now)
	return nil
}

// Reject ends a GPR that awaited approval.
func (r *Record) Reject(by, reason string, now time.Time) error {
	if r.State != PendingApproval {
		return &NotAllowedError{Msg: fmt.Sprintf("Cannot reject GPR in %s state", r.ProvisioningStatus())}
	}
	r.State, r.CompletedAt = Rejected, now
	r.FailureReason = "rejected by " + by
	if reason != "" {
		r.FailureReason += ": " + reason
	}
	r.emit(events.GPRRejected, r.FailureReason, now)
	return nil
}

// Active reports whether the GPR holds (or is about to hold) nodes.
func (r *Record) Active() bool {
	return r.State == Provisioning || r.State == Provisioned || r.State == Releasing
}

// Final reports whether the GPR is over.
func (r *Record) Final() bool {
	return r.State == Complete || r.State == Failed || r.State == Cancelled || r.State == Evicted || r.State == Rejected
}

// Admit reserves nodes of cluster for a queued GPR.
func (r *Record) Admit(cluster string, nodes []string, shape Shape, now time.Time) error {
	if r.State != Queued {
		return fmt.Errorf("admit %s in state %s", r.ID, r.State)
	}
	r.State, r.Cluster, r.Nodes, r.Shape, r.AdmittedAt = Provisioning, cluster, slices.Clone(nodes), shape, now
	r.emit(events.GPRAdmitted, fmt.Sprintf("%d node(s) on %s reserved", len(nodes), cluster), now)
	r.AdmitSeq = r.Seq
	return nil
}

// Provisioned records that the provisioner handed the nodes over; the
// reservation clock starts now. It reports false (and changes nothing) when
// the GPR was not waiting for that, so a duplicate report is harmless.
func (r *Record) Provisioned(now time.Time) bool {
	if r.State != Provisioning {
		return false
	}
	r.State, r.StartedAt, r.ExpiresAt = Provisioned, now, now.Add(r.Spec.ExitDuration)
	r.emit(events.GPRProvisioned, "nodes handed over to the workspace", now)
	return true
}

// Release starts taking the nodes back for reason.
func (r *Record) Release(reason string, now time.Time) error {
	switch {
	case reason == ReasonEarlyRelease && r.State != Provisioned:
		return &NotAllowedError{Msg: fmt.Sprintf("Cannot update early release of GPR in %s state", r.ProvisioningStatus())}
	case r.State == Provisioned, r.State == Provisioning && (reason == ReasonCancelled || reason == ReasonWorkspaceDeleted):
	default:
		return &NotAllowedError{Msg: fmt.Sprintf("Cannot release GPR in %s state", r.ProvisioningStatus())}
	}
	r.State, r.Reason = Releasing, reason
	r.EarlyRelease = reason == ReasonEarlyRelease
	r.emit(events.GPRReleased, reason, now)
	r.ReleaseSeq = r.Seq
	return nil
}

// Released records that the nodes are back; it reports false when the GPR was
// not releasing (a duplicate report).
func (r *Record) Released(now time.Time) bool {
	if r.State != Releasing {
		return false
	}
	if by, ok := strings.CutPrefix(r.Reason, ReasonEvictedBy); ok {
		r.EvictedBy = by
		r.emit(events.GPREvicted, r.Reason, now)
		if r.Spec.RequeueOnFailure {
			r.State, r.Reason, r.Cluster, r.Nodes, r.Shape = Queued, "", "", []string{}, Shape{}
			r.StartedAt, r.ExpiresAt, r.Milestones = time.Time{}, time.Time{}, 0
			r.RetryCount++
			r.emit(events.GPRQueued, "requeued after eviction by "+by, now)
			return true
		}
		r.State, r.CompletedAt, r.FailureReason = Evicted, now, "evicted by "+by
		return true
	}
	r.CompletedAt = now
	if r.Reason == ReasonCancelled {
		r.State = Cancelled
		r.emit(events.GPRCancelled, ReasonCancelled, now)
		return true
	}
	r.State = Complete
	r.emit(events.GPRCompleted, r.Reason, now)
	return true
}

// Cancel deletes a GPR that holds no nodes yet. It reports whether the GPR is
// over at once (Queued) or must first give back reserved nodes (Provisioning).
func (r *Record) Cancel(now time.Time) (done bool, err error) {
	switch r.State {
	case Queued, PendingApproval:
		r.State, r.Reason, r.CompletedAt = Cancelled, ReasonCancelled, now
		r.emit(events.GPRCancelled, ReasonCancelled, now)
		return true, nil
	case Provisioning:
		return false, r.Release(ReasonCancelled, now)
	default:
		return false, &NotAllowedError{Msg: fmt.Sprintf("Cannot delete GPR in %s state", r.ProvisioningStatus())}
	}
}

// Fail records that provisioning failed; with requeueOnFailure the GPR queues again.
func (r *Record) Fail(reason string, now time.Time) {
	if r.State != Provisioning {
		return
	}
	r.FailureReason = reason
	r.emit(events.GPRFailed, reason, now)
	r.Cluster, r.Nodes = "", []string{}
	if r.Spec.RequeueOnFailure {
		r.State = Queued
		r.RetryCount++
		r.emit(events.GPRQueued, "requeued after failure: "+reason, now)
		return
	}
	r.State, r.CompletedAt = Failed, now
}

// Update changes priority and/or name. Finished GPRs refuse.
func (r *Record) Update(priority *int, name *string, now time.Time) error {
	if r.Final() || r.State == Releasing {
		return &NotAllowedError{Msg: fmt.Sprintf("Cannot update GPR in %s state", r.ProvisioningStatus())}
	}
	changed := false
	if priority != nil && *priority != r.Spec.Priority {
		r.Spec.Priority, changed = *priority, true
	}
	if name != nil && *name != r.Name {
		r.Name, changed = *name, true
	}
	if changed {
		r.emit(events.GPRUpdated, "updated", now)
	}
	return nil
}

// OrderAt orders the GPR among queued GPRs of its priority (earlier first):
// its creation time, unless an admin moved it (Move).
func (r *Record) OrderAt() time.Time {
	if r.Rank.IsZero() {
		return r.CreatedAt
	}
	return r.Rank
}

// Move gives a queued GPR a new priority and place (rank) in the queue, as
// an admin's move up or down does; why names who moved it and where.
func (r *Record) Move(priority int, rank time.Time, why string, now time.Time) error {
	if r.State != Queued {
		return &NotAllowedError{Msg: fmt.Sprintf("Cannot move GPR in %s state", r.ProvisioningStatus())}
	}
	r.Spec.Priority, r.Rank = priority, rank
	r.emit(events.GPRUpdated, why, now)
	return nil
}

// DueMilestone returns the next milestone percentage (25, 50, 75) reached at
// now, or 0.
func (r *Record) DueMilestone(now time.Time) int {
	if r.State != Provisioned || r.Milestones >= 3 {
		return 0
	}
	pct := 25 * (r.Milestones + 1)
	if now.Before(r.MilestoneAt(pct)) {
		return 0
	}
	return pct
}

// MilestoneAt is when pct percent of the reservation has passed.
func (r *Record) MilestoneAt(pct int) time.Time {
	return r.StartedAt.Add(r.Spec.ExitDuration * time.Duration(pct) / 100)
}

// Milestone emits the milestone event for pct.
func (r *Record) Milestone(pct int, now time.Time) {
	r.Milestones = pct / 25
	r.emitPct(events.GPRMilestone, fmt.Sprintf("%d%% of the reservation elapsed", pct), pct, now)
}

// ExitWarningLead is how long before its exit a provisioned GPR announces
// it (the "expiring" event), unless a tenth of its exitDuration is shorter:
// enough to save work, never before the 75 % milestone.
const ExitWarningLead = 5 * time.Minute

// ExitWarningAt is when the expiring event is due.
func (r *Record) ExitWarningAt() time.Time {
	return r.ExpiresAt.Add(-min(ExitWarningLead, r.Spec.ExitDuration/10))
}

// DueExitWarning reports whether the expiring event is due at now: the three
// milestones are out, the warning is not, and its time has come.
func (r *Record) DueExitWarning(now time.Time) bool {
	return r.State == Provisioned && r.Milestones == 3 && !now.Before(r.ExitWarningAt())
}

// ExitWarning emits the expiring event.
func (r *Record) ExitWarning(now time.Time) {
	r.Milestones = 4
	r.emit(events.GPRExpiring, "nodes are taken back at "+r.ExpiresAt.UTC().Format(time.RFC3339), now)
}

// NextMilestoneAt is when the next milestone or the exit warning is due;
// zero when both are out.
func (r *Record) NextMilestoneAt() time.Time {
	switch {
	case r.Milestones < 3:
		return r.MilestoneAt(25 * (r.Milestones + 1))
	case r.Milestones == 3:
		return r.ExitWarningAt()
	}
	return time.Time{}
}

// ProvisioningStatus is the EGS wire status (decision D14).
func (r *Record) ProvisioningStatus() string {
	switch r.State {
	case Queued, Provisioning, PendingApproval:
		return "Queued"
	case Provisioned:
		return "Successful"
	case Releasing, Complete:
		if strings.HasPrefix(r.Reason, ReasonEvictedBy) {
			if r.Spec.RequeueOnFailure {
				return "Queued"
			}
			return "Error"
		}
		switch r.Reason {
		case ReasonEarlyRelease:
			return "EarlyReleased"
		case ReasonIdleTimeout:
			return "TimedOut"
		case ReasonCancelled:
			return "Queued"
		}
		return "Complete"
	case Cancelled:
		return "Cancelled"
	default:
		return "Error"
	}
}

// InternalState is the EGS internalState (decision D14).
func (r *Record) InternalState() string {
	switch r.State {
	case Queued, PendingApproval:
		return "Queued"
	case Provisioning:
		return "Reserved"
	case Provisioned, Releasing:
		return "Provisioned"
	case Complete:
		return "Released"
	default:
		return ""
	}
}

// GPUsAllocated is the total GPUs the GPR holds (D4).
func (r *Record) GPUsAllocated() int {
	if !r.Active() {
		return 0
	}
	return len(r.Nodes) * r.Spec.GPUsPerNode
}

func (r *Record) emit(ev events.GPREvent, reason string, now time.Time) {
	r.emitPct(ev, reason, 0, now)
}

func (r *Record) emitPct(ev events.GPREvent, reason string, pct int, now time.Time) {
	r.Seq++
	r.Outbox = append(r.Outbox, events.GPR{
		GPRID: r.ID, Workspace: r.Workspace, Name: r.Name, Event: ev, Seq: r.Seq,
		State: string(r.State), ProvisioningStatus: r.ProvisioningStatus(), Reason: reason,
		Priority: r.Spec.Priority, Cluster: r.Cluster, Nodes: slices.Clone(r.Nodes),
		GPUsAllocated: r.GPUsAllocated(), Percent: pct, At: now,
	})
}
