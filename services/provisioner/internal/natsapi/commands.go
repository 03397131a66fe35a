// Package natsapi is the provisioner's inbound side on NATS: the handler of
// provisioner commands (hand nodes over to a workspace, take them back) and
// the request/reply methods.
package natsapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/services/provisioner/internal/clusters"
	"github.com/open-egs/egs/services/provisioner/internal/handover"
	"github.com/open-egs/egs/services/provisioner/internal/reconcile"
	"github.com/open-egs/egs/services/provisioner/internal/tenancy"
	"github.com/open-egs/egs/services/provisioner/internal/workspaces"
)

// Workspaces finds a workspace by name (the workspaces cache).
type Workspaces interface {
	Lookup(ctx context.Context, name string) (workspaces.Workspace, bool, error)
}

// Source is the CloudEvents source of the provisioner's events.
const Source = "egs/provisioner"

// Crash points passed to Commands.CrashPoint.
const (
	CrashAfterApply  = "after-apply"  // nodes patched, applied not yet published
	CrashAfterRemove = "after-remove" // nodes released, removed not yet published
)

// Commands handles egs.cmd.v1.provisioner.<apply|remove>. Every outcome is
// reported on egs.provision.v1.<ws>.<gprId>.<applied|removed|failed> with the
// id <gprId>.<event>.<seq>, so a redelivered command publishes no duplicate.
//
// An apply labels and taints the nodes, then brings the workspace's objects
// on the cluster in line (namespaces, RBAC, the GPU quota now counting those
// nodes) before it reports. A remove evicts the workspace's pods from the
// nodes (PodDisruptionBudgets are respected until EvictionDeadline after the
// first attempt; a blocked remove is retried through redelivery), takes the
// labels and taint off, lowers the quota, then reports.
type Commands struct {
	Clusters   *clusters.Registry
	Workspaces Workspaces
	// EvictionDeadline bounds how long a PodDisruptionBudget may hold a
	// release up; EvictionWait is how long one delivery retries refused
	// evictions before it gives the command back for redelivery.
	EvictionDeadline time.Duration
	EvictionWait     time.Duration
	Pub              *bus.Publisher
	Log              *slog.Logger
	Now              func() time.Time
	// Provision is the provision stream, read to recognise a stale apply
	// (one redelivered after the GPR's remove); nil skips that check.
	Provision jetstream.Stream
	// CrashPoint, when set, is called at the named points (tests simulate a
	// crash there by panicking).
	CrashPoint func(point string)

	releases sync.Map // gprId → time.Time of the first eviction attempt
}

// Handle is a bus.Handler. A command that cannot be understood is rejected
// with bus.Permanent (dead-lettered); one that cannot succeed is answered with
// a failed event and acknowledged; a transient Kubernetes or NATS error is
// returned as is, for a redelivery.
func (c *Commands) Handle(ctx context.Context, ev bus.Event, msg jetstream.Msg) error {
	var cmd events.ProvisionCommand
	if err := ev.Decode(&cmd); err != nil {
		return bus.Permanent(err)
	}
	if !events.ValidToken(cmd.Workspace) || !events.ValidToken(cmd.GPRID) {
		return bus.Permanent(fmt.Errorf("command %s: workspace %q and gpr %q must be subject tokens", ev.ID, cmd.Workspace, cmd.GPRID))
	}
	apply, _ := events.ProvisionerCommandSubject(events.CommandApply)
	remove, _ := events.ProvisionerCommandSubject(events.CommandRemove)
	switch msg.Subject() {
	case apply:
		return c.apply(ctx, cmd)
	case remove:
		return c.remove(ctx, cmd)
	default:
		return bus.Permanent(fmt.Errorf("command %s: unknown provisioner command subject %s", ev.ID, msg.Subject()))
	}
}

func (c *Commands) apply(ctx context.Context, cmd events.ProvisionCommand) error {
	log := c.Log.With(logkey.GPRID, cmd.GPRID, logkey.Workspace, cmd.Workspace, logkey.Cluster, cmd.Cluster)
	cl, ok := c.Clusters.Get(cmd.Cluster)
	switch {
	case !ok:
		return c.fail(ctx, cmd, fmt.Sprintf("cluster %q is not served by this provisioner", cmd.Cluster))
	case len(cmd.Nodes) == 0:
		return c.fail(ctx, cmd, "the command names no nodes")
	}
	for _, v := range []string{cmd.Workspace, cmd.GPRID} {
		if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
			return c.fail(ctx, cmd, fmt.Sprintf("%q cannot be a node label value: %s", v, strings.Join(msgs, "; ")))
		}
	}
	if stale, err := c.released(ctx, cmd); err != nil {
		return err
	} else if stale {
		log.Info("apply older than the gpr's last remove; ignored", "seq", cmd.Seq)
		return nil
	}
	err := handover.Apply(ctx, cl.Client, handover.Grant{Workspace: cmd.Workspace, GPRID: cmd.GPRID}, cmd.Nodes)
	if errors.Is(err, handover.ErrNodeNotFound) || errors.Is(err, handover.ErrConflict) {
		log.Warn("apply refused", logkey.Reason, err.Error())
		return c.fail(ctx, cmd, err.Error())
	}
	if err != nil {
		return fmt.Errorf("apply %s: %w", cmd.GPRID, err)
	}
	err = c.workspaceObjects(ctx, cl, cmd.Workspace)
	if errors.Is(err, tenancy.ErrForeign) {
		log.Warn("apply refused", logkey.Reason, err.Error())
		return c.fail(ctx, cmd, err.Error())
	}
	if err != nil {
		return fmt.Errorf("apply %s: %w", cmd.GPRID, err)
	}
	c.crash(CrashAfterApply)
	if err := c.report(ctx, cmd, events.ProvisionApplied, ""); err != nil {
		return err
	}
	log.Info("nodes handed over", "nodes", cmd.Nodes)
	return nil
}

func (c *Commands) remove(ctx context.Context, cmd events.ProvisionCommand) error {
	log := c.Log.With(logkey.GPRID, cmd.GPRID, logkey.Workspace, cmd.Workspace, logkey.Cluster, cmd.Cluster)
	if cl, ok := c.Clusters.Get(cmd.Cluster); ok {
		if err := c.evict(ctx, cl, cmd); err != nil {
			return fmt.Errorf("remove %s: %w", cmd.GPRID, err)
		}
		if err := handover.Remove(ctx, cl.Client, handover.Grant{Workspace: cmd.Workspace, GPRID: cmd.GPRID}, cmd.Nodes); err != nil {
			return fmt.Errorf("remove %s: %w", cmd.GPRID, err)
		}
		if err := c.workspaceObjects(ctx, cl, cmd.Workspace); err != nil && !errors.Is(err, tenancy.ErrForeign) {
			return fmt.Errorf("remove %s: %w", cmd.GPRID, err)
		}
		c.releases.Delete(cmd.GPRID)
	} else {
		// Its nodes are out of reach and out of the inventory: nothing holds them.
		log.Warn("remove on a cluster not served; reporting the nodes removed")
	}
	c.crash(CrashAfterRemove)
	if err := c.report(ctx, cmd, events.ProvisionRemoved, ""); err != nil {
		return err
	}
	log.Info("nodes taken back", "nodes", cmd.Nodes)
	return nil
}

// workspaceObjects brings ws's objects on the cluster in line, the GPU quota
// counting the nodes it holds now. A workspace the bucket does not hold (or
// that does not span the cluster) gets no objects: only the quota of
// namespaces made for it before is set.
func (c *Commands) workspaceObjects(ctx context.Context, cl *clusters.Cluster, ws string) error {
	if cl.Simulated {
		return nil
	}
	w, ok, err := c.Workspaces.Lookup(ctx, ws)
	if err != nil {
		return err
	}
	if ok && w.OnCluster(cl.Name) {
		return reconcile.Ensure(ctx, cl, w)
	}
	namespaces, err := tenancy.WorkspaceNamespaces(ctx, cl.Client, ws)
	if err != nil || len(namespaces) == 0 {
		return err
	}
	gpus, err := tenancy.HeldGPUs(ctx, cl.Client, ws)
	if err != nil {
		return err
	}
	return tenancy.SetQuota(ctx, cl.Client, ws, namespaces, gpus)
}

// evict evicts the workspace's pods from the command's nodes; the deadline
// runs from this process's first attempt for the GPR.
func (c *Commands) evict(ctx context.Context, cl *clusters.Cluster, cmd events.ProvisionCommand) error {
	if cl.Simulated {
		return nil
	}
	namespaces, err := tenancy.WorkspaceNamespaces(ctx, cl.Client, cmd.Workspace)
	if err != nil || len(namespaces) == 0 {
		return err
	}
	first, _ := c.releases.LoadOrStore(cmd.GPRID, c.Now())
	return handover.Evict(ctx, cl.Client, cmd.Nodes, namespaces, handover.Eviction{
		Deadline: first.(time.Time).Add(c.EvictionDeadline), Wait: c.EvictionWait, Now: c.Now})
}

// released reports whether a remove with a later seq than cmd's was already
// reported: the apply was redelivered after it (a nak lets later commands
// pass) and must not hand the nodes over again.
func (c *Commands) released(ctx context.Context, cmd events.ProvisionCommand) (bool, error) {
	if c.Provision == nil {
		return false, nil
	}
	subject, err := events.ProvisionSubject(cmd.Workspace, cmd.GPRID, events.ProvisionRemoved)
	if err != nil {
		return false, bus.Permanent(err)
	}
	msg, err := c.Provision.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("last remove of %s: %w", cmd.GPRID, err)
	}
	ev, err := bus.ParseEvent(msg.Data)
	if err != nil {
		return false, nil // not ours to judge; apply
	}
	var res events.ProvisionResult
	if err := ev.Decode(&res); err != nil {
		return false, nil
	}
	return res.Seq > cmd.Seq, nil
}

func (c *Commands) fail(ctx context.Context, cmd events.ProvisionCommand, reason string) error {
	return c.report(ctx, cmd, events.ProvisionFailed, reason)
}

func (c *Commands) crash(point string) {
	if c.CrashPoint != nil {
		c.CrashPoint(point)
	}
}

// report publishes the outcome; its id makes a repeat a no-op.
func (c *Commands) report(ctx context.Context, cmd events.ProvisionCommand, outcome, reason string) error {
	subject, err := events.ProvisionSubject(cmd.Workspace, cmd.GPRID, outcome)
	if err != nil {
		return bus.Permanent(err)
	}
	res := events.ProvisionResult{
		GPRID:     cmd.GPRID,
		Workspace: cmd.Workspace,
		Cluster:   cmd.Cluster,
		Nodes:     cmd.Nodes,
		Seq:       cmd.Seq,
		Error:     reason,
		At:        c.Now().UTC(),
	}
	if res.Nodes == nil {
		res.Nodes = []string{}
	}
	id := cmd.GPRID + "." + outcome + "." + strconv.Itoa(cmd.Seq)
	ev, err := bus.NewEvent(id, Source, events.EventType("provision", outcome), cmd.GPRID, res.At, res)
	if err != nil {
		return bus.Permanent(err)
	}
	return c.Pub.Publish(ctx, subject, ev)
}
