package app

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/libs/rpc"

	"github.com/open-egs/egs/services/gpr-scheduler/internal/gpr"
	"github.com/open-egs/egs/services/gpr-scheduler/internal/queue"
)

func (s *Scheduler) workspace(ctx context.Context, c rpc.Caller, name string) (rpc.Workspace, error) {
	if !events.ValidToken(name) {
		return rpc.Workspace{}, rpc.Errorf(rpc.Invalid, "sliceName %q is not a valid workspace name", name)
	}
	if !c.Allows(name) {
		return rpc.Workspace{}, rpc.Errorf(rpc.Forbidden, "not allowed in workspace %s", name)
	}
	ws, err := rpc.Call[rpc.Workspace](ctx, s.nc, events.RPCWorkspaceGet, rpc.WorkspaceRef{Name: name})
	if err != nil {
		return rpc.Workspace{}, err
	}
	return ws, nil
}

func (s *Scheduler) nodeList() []queue.Node {
	if s.nodeCache == nil {
		s.nodeCache = make([]queue.Node, 0, len(s.nodes))
		for _, n := range s.nodes {
			s.nodeCache = append(s.nodeCache, n)
		}
	}
	return s.nodeCache
}

// Create validates and queues a new GPR.
func (s *Scheduler) Create(ctx context.Context, req rpc.CreateGPRRequest) (rpc.CreateGPRReply, error) {
	ws, err := s.workspace(ctx, req.Caller, req.Spec.Workspace)
	if err != nil {
		return rpc.CreateGPRReply{}, err
	}
	name := strings.TrimSpace(req.Spec.Name)
	if name == "" || len(name) > 253 {
		return rpc.CreateGPRReply{}, rpc.Errorf(rpc.Invalid, "gprName must be 1 to 253 characters")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleted[ws.Name] {
		return rpc.CreateGPRReply{}, rpc.Errorf(rpc.NotFound, "workspace %s was deleted", ws.Name)
	}
	spec, err := resolveSpec(req.Spec, ws, s.nodeList())
	if err != nil {
		return rpc.CreateGPRReply{}, err
	}
	waiting := 0
	for _, e := range s.live[ws.Name] {
		if e.rec.State == gpr.Queued || e.rec.State == gpr.PendingApproval {
			waiting++
		}
	}
	if waiting >= MaxQueuedPerWorkspace {
		return rpc.CreateGPRReply{}, rpc.Errorf(rpc.Invalid, "workspace %s already has %d GPRs waiting, the most allowed", ws.Name, waiting)
	}
	over := overPolicy(spec, ws.Policy, waiting)
	for attempt := 0; ; attempt++ {
		rec := gpr.New(newGPRID(), name, ws.Name, spec, s.now())
		if len(over) > 0 {
			rec = gpr.NewPending(rec.ID, name, ws.Name, spec, over, s.now())
		}
		e := &entry{rec: rec}
		err := s.save(ctx, e)
		if errors.Is(err, jetstream.ErrKeyExists) && attempt < 3 {
			continue // an id collision: draw again
		}
		if err != nil {
			return rpc.CreateGPRReply{}, err
		}
		s.recs[e.rec.ID] = e
		// The GPR is stored: it is accepted even if publishing fails now (the
		// loop retries the outbox).
		s.stage(e)
		if err := s.send(ctx); err != nil {
			s.log.Warn("publish gpr events; will retry", logkey.GPRID, e.rec.ID, logkey.Err, err)
		}
		s.Wake()
		return rpc.CreateGPRReply{GPRID: e.rec.ID}, nil
	}
}

func (s *Scheduler) find(c rpc.Caller, id string) (*entry, error) {
	e, ok := s.recs[id]
	if !ok || e.rec.State == gpr.Cancelled || cancelling(e.rec) {
		return nil, rpc.Errorf(rpc.NotFound, "GPR %s not found", id)
	}
	if !c.Allows(e.rec.Workspace) {
		return nil, rpc.Errorf(rpc.Forbidden, "GPR %s belongs to another workspace", id)
	}
	return e, nil
}

// cancelling reports a GPR deleted while its nodes were being prepared: to
// clients it is gone already (D14), while its reservation is given back.
func cancelling(r *gpr.Record) bool {
	return r.State == gpr.Releasing && r.Reason == gpr.ReasonCancelled
}

// Get returns one GPR.
func (s *Scheduler) Get(_ context.Context, ref rpc.GPRRef) (rpc.GPR, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.find(ref.Caller, ref.GPRID)
	if err != nil {
		return rpc.GPR{}, err
	}
	return s.view(e.rec), nil
}

// List returns the GPRs of a workspace, oldest first.
func (s *Scheduler) List(ctx context.Context, req rpc.ListGPRsRequest) (rpc.GPRList, error) {
	if _, err := s.workspace(ctx, req.Caller, req.Workspace); err != nil {
		return rpc.GPRList{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := rpc.GPRList{Items: []rpc.GPR{}}
	for _, e := range s.recs {
		if e.rec.Workspace == req.Workspace && e.rec.State != gpr.Cancelled && !cancelling(e.rec) {
			out.Items = append(out.Items, s.view(e.rec))
		}
	}
	slices.SortFunc(out.Items, func(a, b rpc.GPR) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.GPRID, b.GPRID)
	})
	return out, nil
}

// Update changes priority or name, or releases a provisioned GPR early.
func (s *Scheduler) Update(ctx context.Context, req rpc.UpdateGPRRequest) (rpc.Empty, error) {
	if req.Priority != nil && (*req.Priority < 1 || *req.Priority > 300) {
		return rpc.Empty{}, rpc.Errorf(rpc.Invalid, "priority must be between 1 and 300, got %d", *req.Priority)
	}
	if req.Name != nil && (strings.TrimSpace(*req.Name) == "" || len(*req.Name) > 253) {
		return rpc.Empty{}, rpc.Errorf(rpc.Invalid, "gprName must be 1 to 253 characters")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.find(req.Caller, req.GPRID)
	if err != nil {
		return rpc.Empty{}, err
	}
	release := req.EarlyRelease != nil && *req.EarlyRelease
	if release && e.rec.State != gpr.Provisioned {
		return rpc.Empty{}, conflict(e.rec.Release(gpr.ReasonEarlyRelease, s.now()))
	}
	before := *e.rec
	if req.Priority != nil || req.Name != nil {
		var name *string
		if req.Name != nil {
			n := strings.TrimSpace(*req.Name)
			name = &n
		}
		if err := e.rec.Update(req.Priority, name, s.now()); err != nil {
			return rpc.Empty{}, conflict(err)
		}
	}
	if release {
		if err := e.rec.Release(gpr.ReasonEarlyRelease, s.now()); err != nil {
			*e.rec = before
			return rpc.Empty{}, conflict(err)
		}
	}
	if err := s.commit(ctx, e, before); err != nil {
		return rpc.Empty{}, err
	}
	s.stage(e)
	if release {
		s.stageCommand(events.CommandRemove, e.rec, e.rec.ReleaseSeq, "")
		e.sentAt = s.now()
	}
	if err := s.send(ctx); err != nil {
		s.log.Warn("publish; will retry", logkey.GPRID, e.rec.ID, logkey.Err, err)
	}
	s.Wake()
	return rpc.Empty{}, nil
}

// Delete cancels a GPR that is not provisioned.
func (s *Scheduler) Delete(ctx context.Context, ref rpc.GPRRef) (rpc.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.recs[ref.GPRID]; ok && cancelling(e.rec) && ref.Caller.Allows(e.rec.Workspace) {
		return rpc.Empty{}, nil // deleted already; its nodes are on their way back
	}
	e, err := s.find(ref.Caller, ref.GPRID)
	if err != nil {
		return rpc.Empty{}, err
	}
	before := *e.rec
	done, err := e.rec.Cancel(s.now())
	if err != nil {
		return rpc.Empty{}, conflict(err)
	}
	if err := s.commit(ctx, e, before); err != nil {
		return rpc.Empty{}, err
	}
	s.stage(e)
	if !done {
		s.stageCommand(events.CommandRemove, e.rec, e.rec.ReleaseSeq, "")
		e.sentAt = s.now()
	}
	if err := s.send(ctx); err != nil {
		s.log.Warn("publish; will retry", logkey.GPRID, e.rec.ID, logkey.Err, err)
	}
	s.Wake()
	return rpc.Empty{}, nil
}

// WaitTime estimates when a GPR like the one described would start.
func (s *Scheduler) WaitTime(ctx context.Context, req rpc.CreateGPRRequest) (rpc.WaitTime, error) {
	ws, err := s.workspace(ctx, req.Caller, req.Spec.Workspace)
	if err != nil {
		return rpc.WaitTime{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	spec, err := resolveSpec(req.Spec, ws, s.nodeList())
	if err != nil {
		return rpc.WaitTime{}, err
	}
	now := s.now()
	probe := &gpr.Record{ID: "gpr-probe", Workspace: ws.Name, Spec: spec, CreatedAt: now}
	// The probe joins the queue for the estimate only.
	s.order.Set(request(probe))
	at, ok := queue.Estimate(s.snapshot(now))[probe.ID]
	s.order.Remove(probe.ID)
	if !ok {
		return rpc.WaitTime{}, rpc.Errorf(rpc.Invalid, "no node of the workspace can ever satisfy this request")
	}
	return rpc.WaitTime{EstimatedStart: at, EstimatedWait: at.Sub(now)}, nil
}

// Allocations lists the ledger.
func (s *Scheduler) Allocations(_ context.Context, _ rpc.Empty) (rpc.AllocationList, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := rpc.AllocationList{Allocations: make([]rpc.Allocation, 0, len(s.allocs))}
	for _, le := range s.allocs {
		out.Allocations = append(out.Allocations, le.alloc)
	}
	slices.SortFunc(out.Allocations, func(a, b rpc.Allocation) int {
		return strings.Compare(a.Cluster+"/"+a.Node, b.Cluster+"/"+b.Node)
	})
	return out, nil
}

func conflict(err error) error {
	var na *gpr.NotAllowedError
	if errors.As(err, &na) {
		return rpc.Errorf(rpc.Conflict, "%s", na.Msg)
	}
	return err
}

// view is the RPC shape of r, with why it waits and when it should start.
func (s *Scheduler) view(r *gpr.Record) rpc.GPR {
	now := s.now()
	v := rpc.GPR{
		GPRID: r.ID, Name: r.Name, Workspace: r.Workspace, Cluster: r.Cluster,
		GPUsPerNode: r.Spec.GPUsPerNode, Nodes: r.Spec.Nodes, InstanceType: r.Spec.InstanceType,
		GPUShape: r.Spec.GPUShape, MemoryPerGPU: r.Spec.MemoryPerGPU, Priority: r.Spec.Priority,
		ExitDuration: r.Spec.ExitDuration, IdleTimeout: r.Spec.IdleTimeout, EnforceIdleTimeout: r.Spec.EnforceIdleTimeout,
		EnableEviction: r.Spec.EnableEviction, RequeueOnFailure: r.Spec.RequeueOnFailure, EarlyRelease: r.EarlyRelease,
		State: string(r.State), ProvisioningStatus: r.ProvisioningStatus(), InternalState: r.InternalState(),
		Reason: r.Reason, FailureReason: r.FailureReason, GPUsAllocated: r.GPUsAllocated(),
		NodeNames: slices.Clone(r.Nodes), CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, CompletedAt: r.CompletedAt,
		RetryCount: r.RetryCount, DelayedCount: r.DelayedCount + s.delays[r.ID],
	}
	if v.NodeNames == nil {
		v.NodeNames = []string{}
	}
	if v.InstanceType == "" {
		v.InstanceType = r.Shape.InstanceType
	}
	if v.GPUShape == "" {
		v.GPUShape = r.Shape.GPUProduct
	}
	if v.MemoryPerGPU == 0 {
		v.MemoryPerGPU = r.Shape.MemoryGB
	}
	v.EvictedBy = r.EvictedBy
	v.PendingReasons = []rpc.Reason{}
	switch r.State {
	case gpr.PendingApproval:
		for _, o := range r.OverPolicy {
			v.PendingReasons = append(v.PendingReasons, rpc.Reason{Code: "AWAITING_APPROVAL", Message: "over the workspace policy: " + o})
		}
		v.Reason = "awaiting approval: " + strings.Join(r.OverPolicy, "; ")
	case gpr.Queued:
		depth := s.rank(r.ID)
		plan := s.explain(now, depth)
		for _, w := range plan.Waiting[r.ID] {
			v.PendingReasons = append(v.PendingReasons, rpc.Reason{Code: w.Code, Message: w.Message})
		}
		if len(v.PendingReasons) == 0 {
			v.PendingReasons = append(v.PendingReasons, rpc.Reason{Code: "SCHEDULING", Message: "waiting for the next scheduling pass"})
		}
		v.Reason = queue.Why(plan.Waiting[r.ID])
		if v.Reason == "" {
			v.Reason = "waiting for the next scheduling pass"
		}
		v.QueuePosition = plan.Position[r.ID]
		if at, ok := s.estimate(now, depth)[r.ID]; ok {
			v.EstimatedStart, v.EstimatedWait = at, max(at.Sub(now), 0)
		}
	case gpr.Provisioning:
		v.EstimatedStart = now
	default:
		if !r.StartedAt.IsZero() {
			v.EstimatedStart = r.StartedAt
			v.EstimatedWait = r.StartedAt.Sub(r.CreatedAt).Round(time.Second)
		}
	}
	return v
}

func firstOr(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// MaxEstimateDepth bounds the queue positions that get an estimated start on
// request: playing the queue forward costs positions × nodes, and beyond a
// few thousand places the estimate says little anyway. Deeper GPRs get
// their position and reasons, without an estimate.
const MaxEstimateDepth = 5000

// rank is the 1-based place of a queued GPR in the queue (0 if not queued),
// read from the last explanation when it covers the GPR, otherwise counted
// (O(place)).
func (s *Scheduler) rank(id string) int {
	if s.analysis != nil && s.analysisAt == s.version {
		if p, ok := s.analysis.Position[id]; ok {
			return p
		}
	}
	i := 0
	for r := range s.order.All() {
		i++
		if r.ID == id {
			return i
		}
	}
	return 0
}

// explain is the full pass (why each queued GPR waits, its place) for the
// first depth GPRs, computed when someone looks and kept until something
// changes or a deeper one is asked for.
func (s *Scheduler) explain(now time.Time, depth int) *queue.Plan {
	if s.analysis == nil || s.analysisAt != s.version || s.analysisDepth < depth {
		p := queue.ScheduleHead(s.snapshot(now), depth)
		s.analysis, s.analysisAt, s.analysisDepth = &p, s.version, depth
	}
	return s.analysis
}

// estimate plays the queue forward to depth (at most MaxEstimateDepth),
// cached like explain.
func (s *Scheduler) estimate(now time.Time, depth int) map[string]time.Time {
	if depth > MaxEstimateDepth {
		return nil
	}
	if s.estimates == nil || s.estimatesAt != s.version || s.estimatesDepth < depth {
		s.estimates = queue.EstimateHead(s.snapshot(now), depth)
		s.estimatesAt, s.estimatesDepth = s.version, depth
	}
	return s.estimates
}

// snapshot is the queue's view of the present.
func (s *Scheduler) snapshot(now time.Time) queue.Snapshot {
	return queue.Snapshot{Now: now, Nodes: s.nodeList(), Order: s.order, Holdings: s.buildHoldings(now)}
}

// decideSnapshot is the snapshot of a scheduling pass: indexed (the queue's
// order, the free nodes and the holders as kept by every write) and with the
// holdings rebuilt only when a write changed them.
func (s *Scheduler) decideSnapshot(now time.Time) queue.Snapshot {
	if s.holdDirty {
		s.holdings, s.holdDirty = s.buildHoldings(now), false
	}
	free := make([]queue.Node, 0, len(s.free))
	for _, n := range s.free {
		free = append(free, n)
	}
	return queue.Snapshot{Now: now, Nodes: s.nodeList(), Order: s.order, Holdings: s.holdings,
		Indexed: true, Free: free, Holders: s.holders, Heads: s.heads}
}

// buildHoldings lists what holds nodes: the active GPRs, and ledger entries
// that no active GPR accounts for (they still block their nodes).
func (s *Scheduler) buildHoldings(now time.Time) []queue.Holding {
	out := make([]queue.Holding, 0, len(s.active))
	covered := map[string]bool{}
	for _, e := range s.active {
		r := e.rec
		free := now
		switch r.State {
		case gpr.Provisioned:
			free = r.ExpiresAt
		case gpr.Provisioning:
			free = now.Add(r.Spec.ExitDuration)
		}
		out = append(out, queue.Holding{GPRID: r.ID, Workspace: r.Workspace, Cluster: r.Cluster,
			Nodes: r.Nodes, FreeAt: free, Priority: r.Spec.Priority, StartedAt: r.StartedAt,
			Evictable: r.State == gpr.Provisioned && r.Spec.EnableEviction, Releasing: r.State == gpr.Releasing})
		for _, n := range r.Nodes {
			covered[r.Cluster+"/"+n] = true
		}
	}
	for key, le := range s.allocs {
		if !covered[key] {
			out = append(out, queue.Holding{GPRID: le.alloc.GPRID, Workspace: "\x00ledger",
				Cluster: le.alloc.Cluster, Nodes: []string{le.alloc.Node}, FreeAt: now})
		}
	}
	return out
}

// Approve queues a GPR that awaited approval (Owners and admins).
func (s *Scheduler) Approve(ctx context.Context, req rpc.DecideRequest) (rpc.Empty, error) {
	return s.decide(ctx, req, func(r *gpr.Record, now time.Time) error { return r.Approve(req.Caller.Subject, now) })
}

// Reject ends a GPR that awaited approval (Owners and admins).
func (s *Scheduler) Reject(ctx context.Context, req rpc.DecideRequest) (rpc.Empty, error) {
	return s.decide(ctx, req, func(r *gpr.Record, now time.Time) error {
		return r.Reject(req.Caller.Subject, strings.TrimSpace(req.Reason), now)
	})
}

func (s *Scheduler) decide(ctx context.Context, req rpc.DecideRequest, op func(*gpr.Record, time.Time) error) (rpc.Empty, error) {
	if req.Caller.Role != "Owner" && req.Caller.Role != "admin" {
		return rpc.Empty{}, rpc.Errorf(rpc.Forbidden, "only an Owner or an admin may approve or reject GPRs")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.find(req.Caller, req.GPRID)
	if err != nil {
		return rpc.Empty{}, err
	}
	before := *e.rec
	if err := op(e.rec, s.now()); err != nil {
		return rpc.Empty{}, conflict(err)
	}
	if err := s.commit(ctx, e, before); err != nil {
		return rpc.Empty{}, err
	}
	s.stage(e)
	if err := s.send(ctx); err != nil {
		s.log.Warn("publish; will retry", logkey.GPRID, e.rec.ID, logkey.Err, err)
	}
	s.Wake()
	return rpc.Empty{}, nil
}
