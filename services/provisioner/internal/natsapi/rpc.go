package natsapi

import (
	"context"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
)

// Inventory is the view of the nodes the queries answer from.
type Inventory interface {
	// List returns the nodes sorted by cluster then name, only those of the
	// given clusters when any are given.
	List(clusters []string) []events.Node
}

// Queries serves the provisioner's request/reply methods.
type Queries struct {
	Inventory Inventory
	Clusters  map[string]bool // registered clusters
}

// InventoryList answers events.RPCInventoryList.
func (q *Queries) InventoryList(_ context.Context, req rpc.InventoryRequest) (rpc.Inventory, error) {
	return rpc.Inventory{Nodes: q.Inventory.List(req.Clusters)}, nil
}

// KubeConfig answers events.RPCKubeConfig. Issuing kubeconfigs needs
// service accounts and RBAC in the workspace namespaces, which the
// provisioner does not create yet: a valid request is answered
// NOT_IMPLEMENTED.
func (q *Queries) KubeConfig(_ context.Context, req rpc.KubeConfigRequest) (rpc.KubeConfig, error) {
	switch {
	case req.Workspace == "":
		return rpc.KubeConfig{}, rpc.Errorf(rpc.BadRequest, "workspace is required")
	case !events.ValidToken(req.Workspace):
		return rpc.KubeConfig{}, rpc.Errorf(rpc.BadRequest, "workspace %q is not a valid name", req.Workspace)
	case req.Cluster == "":
		return rpc.KubeConfig{}, rpc.Errorf(rpc.BadRequest, "cluster is required")
	case !req.Caller.Allows(req.Workspace):
		return rpc.KubeConfig{}, rpc.Errorf(rpc.Forbidden, "not allowed on workspace %q", req.Workspace)
	case !q.Clusters[req.Cluster]:
		return rpc.KubeConfig{}, rpc.Errorf(rpc.NotFound, "cluster %q is not registered", req.Cluster)
	}
	return rpc.KubeConfig{}, rpc.Errorf(rpc.NotImplemented, "kubeconfig issuance is not yet available")
}
