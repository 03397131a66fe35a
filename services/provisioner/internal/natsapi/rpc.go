package natsapi

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/services/provisioner/internal/clusters"
	"github.com/open-egs/egs/services/provisioner/internal/kubeconfig"
	"github.com/open-egs/egs/services/provisioner/internal/reconcile"
	"github.com/open-egs/egs/services/provisioner/internal/tenancy"
)

// Inventory is the view of the nodes the queries answer from.
type Inventory interface {
	// List returns the nodes sorted by cluster then name, only those of the
	// given clusters when any are given.
	List(clusters []string) []events.Node
}

// Queries serves the provisioner's request/reply methods.
type Queries struct {
	Inventory  Inventory
	Clusters   *clusters.Registry
	Workspaces Workspaces
	// TokenTTL is the lifetime asked for the tokens of issued kubeconfigs.
	TokenTTL time.Duration
	Log      *slog.Logger
}

// InventoryList answers events.RPCInventoryList.
func (q *Queries) InventoryList(_ context.Context, req rpc.InventoryRequest) (rpc.Inventory, error) {
	return rpc.Inventory{Nodes: q.Inventory.List(req.Clusters)}, nil
}

// KubeConfig answers events.RPCKubeConfig: it makes sure the workspace's
// objects exist on the cluster, then issues a kubeconfig with a token of the
// workspace's ServiceAccount (see package kubeconfig).
func (q *Queries) KubeConfig(ctx context.Context, req rpc.KubeConfigRequest) (rpc.KubeConfig, error) {
	switch {
	case req.Workspace == "":
		return rpc.KubeConfig{}, rpc.Errorf(rpc.BadRequest, "workspace is required")
	case !events.ValidToken(req.Workspace):
		return rpc.KubeConfig{}, rpc.Errorf(rpc.BadRequest, "workspace %q is not a valid name", req.Workspace)
	case req.Cluster == "":
		return rpc.KubeConfig{}, rpc.Errorf(rpc.BadRequest, "cluster is required")
	case !req.Caller.Allows(req.Workspace):
		return rpc.KubeConfig{}, rpc.Errorf(rpc.Forbidden, "not allowed on workspace %q", req.Workspace)
	}
	cl, ok := q.Clusters.Get(req.Cluster)
	if !ok {
		return rpc.KubeConfig{}, rpc.Errorf(rpc.NotFound, "cluster %q is not registered", req.Cluster)
	}
	w, ok, err := q.Workspaces.Lookup(ctx, req.Workspace)
	switch {
	case err != nil:
		return rpc.KubeConfig{}, rpc.Errorf(rpc.Unavailable, "workspace %s: %v", req.Workspace, err)
	case !ok:
		return rpc.KubeConfig{}, rpc.Errorf(rpc.NotFound, "workspace %q not found", req.Workspace)
	case !w.OnCluster(cl.Name):
		return rpc.KubeConfig{}, rpc.Errorf(rpc.NotFound, "cluster %s is not in workspace %s", cl.Name, w.Name)
	}
	log := q.Log.With(logkey.Workspace, w.Name, logkey.Cluster, cl.Name)
	if err := reconcile.Ensure(ctx, cl, w); err != nil {
		log.Warn("kubeconfig: workspace objects", logkey.Err, err)
		if errors.Is(err, tenancy.ErrForeign) {
			return rpc.KubeConfig{}, rpc.Errorf(rpc.Conflict, "workspace %s cannot be set up on cluster %s: %v", w.Name, cl.Name, err)
		}
		return rpc.KubeConfig{}, rpc.Errorf(rpc.Unavailable, "cluster %s: %v", cl.Name, err)
	}
	b, expires, err := kubeconfig.Issue(ctx, cl, w.Name, w.Namespaces[0], q.TokenTTL)
	if err != nil {
		log.Warn("kubeconfig: token request", logkey.Err, err)
		return rpc.KubeConfig{}, rpc.Errorf(rpc.Unavailable, "cluster %s: %v", cl.Name, err)
	}
	log.Info("kubeconfig issued", "expires", expires.UTC()) // never the token
	return rpc.KubeConfig{KubeConfig: string(b)}, nil
}
