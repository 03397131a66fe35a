package egs

import "github.com/open-egs/egs/libs/rpc"

// Fixed values of the workspace list (§4.3): we run no overlay network.
const (
	OverlayNetworkDeploymentMode = "no-network"
	MaxClusters                  = 16
)

// CreateWorkspaceBody is the body of POST /api/v1/slice-workspace (§4.1).
// Newer clients' extra keys (overlayNetworkDeploymentMode, sliceSubnet, ...)
// are ignored.
type CreateWorkspaceBody struct {
	WorkspaceName *string  `json:"workspaceName"`
	Clusters      []string `json:"clusters"`
	Namespaces    []string `json:"namespaces"`
	Username      *string  `json:"username"`
	Email         *string  `json:"email"`
}

// Request checks the syntax of a create request and converts it. Whether the
// clusters exist is the workspace service's call.
func (b CreateWorkspaceBody) Request() (rpc.CreateWorkspaceRequest, error) {
	name := str(b.WorkspaceName)
	if !ValidName(name) {
		return rpc.CreateWorkspaceRequest{}, nameError("workspaceName")
	}
	if len(b.Clusters) == 0 {
		return rpc.CreateWorkspaceRequest{}, invalid("%q must not be empty", "clusters")
	}
	for _, c := range b.Clusters {
		if !ValidName(c) {
			return rpc.CreateWorkspaceRequest{}, invalid("%q must hold DNS-style cluster names", "clusters")
		}
	}
	for _, ns := range b.Namespaces {
		if !ValidName(ns) {
			return rpc.CreateWorkspaceRequest{}, invalid("%q must hold DNS-style namespace names", "namespaces")
		}
	}
	return rpc.CreateWorkspaceRequest{
		Name:       name,
		Clusters:   b.Clusters,
		Namespaces: nonNil(b.Namespaces),
		Username:   str(b.Username),
		Email:      str(b.Email),
	}, nil
}

// WorkspaceRefBody is the body of DELETE /api/v1/slice-workspace (§4.2).
type WorkspaceRefBody struct {
	WorkspaceName *string `json:"workspaceName"`
}

// Name returns the workspace name, which must be DNS-style.
func (b WorkspaceRefBody) Name() (string, error) {
	return WorkspaceName("workspaceName", str(b.WorkspaceName))
}

// WorkspaceName checks a workspace name that arrived under key.
func WorkspaceName(key, name string) (string, error) {
	if !ValidName(name) {
		return "", nameError(key)
	}
	return name, nil
}

// KubeConfigBody is the body of POST /api/v1/slice-workspace/kube-config (§4.4).
type KubeConfigBody struct {
	ClusterName   *string `json:"clusterName"`
	WorkspaceName *string `json:"workspaceName"`
}

// Names returns the workspace and the cluster ("" when not given: D6).
func (b KubeConfigBody) Names() (ws, cluster string, err error) {
	if ws, err = WorkspaceName("workspaceName", str(b.WorkspaceName)); err != nil {
		return "", "", err
	}
	cluster = str(b.ClusterName)
	if cluster != "" && !ValidName(cluster) {
		return "", "", nameError("clusterName")
	}
	return ws, cluster, nil
}

// KubeConfig is the data of the kube-config call.
type KubeConfig struct {
	KubeConfig string `json:"kubeConfig"`
}

// WorkspaceCreated is the data of POST /api/v1/slice-workspace.
type WorkspaceCreated struct {
	WorkspaceName string `json:"workspaceName"`
}

// Workspace is one element of the workspace list (§4.3).
type Workspace struct {
	Name                         string      `json:"name"`
	OverlayNetworkDeploymentMode string      `json:"overlayNetworkDeploymentMode"`
	MaxClusters                  int         `json:"maxClusters"`
	SliceDescription             string      `json:"sliceDescription"`
	Clusters                     []string    `json:"clusters"`
	Namespaces                   []Namespace `json:"namespaces"`
}

// Namespace is a namespace of a workspace and the clusters it exists on.
type Namespace struct {
	Namespace string   `json:"namespace"`
	Clusters  []string `json:"clusters"`
}

// WorkspaceList is the data of GET /api/v1/slice-workspace/list: exactly
// {workspaces}, since clients reject any other key.
type WorkspaceList struct {
	Workspaces []Workspace `json:"workspaces"`
}

// FromWorkspace converts a workspace; each namespace exists on every cluster
// of the workspace.
func FromWorkspace(w rpc.Workspace) Workspace {
	clusters := append([]string{}, w.Clusters...)
	out := Workspace{
		Name:                         w.Name,
		OverlayNetworkDeploymentMode: OverlayNetworkDeploymentMode,
		MaxClusters:                  MaxClusters,
		Clusters:                     clusters,
		Namespaces:                   make([]Namespace, 0, len(w.Namespaces)),
	}
	for _, ns := range w.Namespaces {
		out.Namespaces = append(out.Namespaces, Namespace{Namespace: ns, Clusters: append([]string{}, clusters...)})
	}
	return out
}

// FromWorkspaceList converts a list; workspaces is [] when empty.
func FromWorkspaceList(l rpc.WorkspaceList) WorkspaceList {
	out := WorkspaceList{Workspaces: make([]Workspace, 0, len(l.Workspaces))}
	for _, w := range l.Workspaces {
		out.Workspaces = append(out.Workspaces, FromWorkspace(w))
	}
	return out
}
