package rpc

import (
	"slices"
	"time"

	"github.com/open-egs/egs/libs/events"
)

// Caller is who asks, as the edge verified it. Services use it to authorise.
// Workspace is the one workspace an Editor or Viewer is bound to; "" for an
// Owner or admin, who may act on every workspace.
//
// A user (a portal session or a user token) may hold roles in several
// workspaces. The edge then sends Workspace set to one of them and
// Workspaces listing all those in which the user's role grants the request,
// with Role the least of those roles; a service that knows only Workspace
// thus sees the caller confined to one workspace, never widened to all.
type Caller struct {
	Subject    string   `json:"subject"` // key id, admin, user:<username> or an OAuth2 client id
	Role       string   `json:"role"`    // Owner, Editor, Viewer, admin
	Workspace  string   `json:"workspace"`
	Workspaces []string `json:"workspaces,omitempty"` // further workspaces with the same Role (users only)
}

// Allows reports whether the caller may act on workspace ws.
func (c Caller) Allows(ws string) bool {
	if len(c.Workspaces) > 0 { // never "every workspace", even if Workspace was left empty
		return c.Workspace == ws || slices.Contains(c.Workspaces, ws)
	}
	return c.Workspace == "" || c.Workspace == ws
}

// ---- workspace service ----

// Workspace is a workspace as the workspace service stores it.
type Workspace struct {
	Name       string    `json:"name"`
	Clusters   []string  `json:"clusters"`
	Namespaces []string  `json:"namespaces"`
	Username   string    `json:"username"`
	Email      string    `json:"email"`
	CreatedAt  time.Time `json:"createdAt"`
	Policy     Policy    `json:"policy"`
}

// Policy is a workspace's admission policy. A GPR beyond it is not refused:
// it waits in PendingApproval until an admin approves or rejects it. Zero
// values mean "no limit" (AllowedShapes empty: any shape).
type Policy struct {
	AllowedShapes   []string      `json:"allowedShapes"`   // GPU models or instance types
	MaxGPUsPerGPR   int           `json:"maxGpusPerGpr"`   // numberOfGPUs x numberOfGPUNodes
	MaxMemoryPerGPU int           `json:"maxMemoryPerGpu"` // GB asked per GPU
	MaxQueuedGPRs   int           `json:"maxQueuedGprs"`   // GPRs waiting at once
	MaxExitDuration time.Duration `json:"maxExitDuration"`
	MinPriority     int           `json:"minPriority"`
	MaxPriority     int           `json:"maxPriority"`
	// AutoEviction lets the workspace's GPRs that set enableEviction be
	// evicted by higher-priority ones (default true: nil means true).
	AutoEviction *bool `json:"autoEviction"`
	// RequeueOnFailure is the default for GPRs that do not say.
	RequeueOnFailure *bool `json:"requeueOnFailure"`
}

// SetPolicyRequest is the body of RPCWorkspacePolicy (admins only).
type SetPolicyRequest struct {
	Caller    Caller `json:"caller"`
	Workspace string `json:"workspace"`
	Policy    Policy `json:"policy"`
}

// DecideRequest approves or rejects a GPR waiting in PendingApproval
// (RPCGPRApprove, RPCGPRReject; admins and Owners only).
type DecideRequest struct {
	Caller Caller `json:"caller"`
	GPRID  string `json:"gprId"`
	Reason string `json:"reason"` // rejection reason, shown as failureReason
}

// MoveGPRRequest moves a queued GPR one place up or down the queue
// (RPCGPRMove; admins and Owners only).
type MoveGPRRequest struct {
	Caller    Caller `json:"caller"`
	GPRID     string `json:"gprId"`
	Direction string `json:"direction"` // MoveUp or MoveDown
}

// Directions of MoveGPRRequest.
const (
	MoveUp   = "up"
	MoveDown = "down"
)

// Template is a GPR template (EGS §7); Name is its key.
type Template struct {
	Name                string `json:"name"`
	ClusterName         string `json:"clusterName"`
	GPUShape            string `json:"gpuShape"`
	InstanceType        string `json:"instanceType"`
	ExitDuration        string `json:"exitDuration"`
	NumberOfGPUs        int    `json:"numberOfGPUs"`
	NumberOfGPUNodes    int    `json:"numberOfGPUNodes"`
	Priority            int    `json:"priority"`
	MemoryPerGPU        int    `json:"memoryPerGpu"`
	EnforceIdleTimeOut  bool   `json:"enforceIdleTimeOut"`
	IdleTimeOutDuration string `json:"idleTimeOutDuration"`
	EnableEviction      bool   `json:"enableEviction"`
	RequeueOnFailure    bool   `json:"requeueOnFailure"`
}

// Binding attaches templates to a workspace per cluster (EGS §8); its name is
// the workspace's.
type Binding struct {
	Name          string           `json:"name"`
	Clusters      []BindingCluster `json:"clusters"`
	EnableAutoGPR bool             `json:"enableAutoGPR"`
}

// BindingCluster is one cluster entry of a binding.
type BindingCluster struct {
	ClusterName         string   `json:"clusterName"`
	DefaultTemplateName string   `json:"defaultTemplateName"`
	Templates           []string `json:"templates"`
}

// CreateWorkspaceRequest is the body of RPCWorkspaceCreate.
type CreateWorkspaceRequest struct {
	Name       string   `json:"name"`
	Clusters   []string `json:"clusters"`
	Namespaces []string `json:"namespaces"`
	Username   string   `json:"username"`
	Email      string   `json:"email"`
}

// WorkspaceRef names one workspace (RPCWorkspaceGet, RPCWorkspaceDelete).
type WorkspaceRef struct {
	Name string `json:"name"`
}

// ListWorkspacesRequest is the body of RPCWorkspaceList; Scope "" lists all.
type ListWorkspacesRequest struct {
	Scope string `json:"scope"`
}

// WorkspaceList is the reply of RPCWorkspaceList, sorted by name.
type WorkspaceList struct {
	Workspaces []Workspace `json:"workspaces"`
}

// ---- auth service ----

// ExchangeRequest is the body of RPCAuthExchange.
type ExchangeRequest struct {
	APIKey string `json:"apiKey"`
}

// ExchangeReply carries the signed access token (900 s).
type ExchangeReply struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// CreateKeyRequest is the body of RPCAuthKeyCreate.
type CreateKeyRequest struct {
	Name        string `json:"name"`
	UserName    string `json:"userName"`
	Description string `json:"description"`
	Role        string `json:"role"`
	Validity    string `json:"validity"` // YYYY-MM-DD, last valid day (UTC)
	Workspace   string `json:"workspace"`
}

// CreateKeyReply returns the secret once; only its hash is stored.
type CreateKeyReply struct {
	APIKey string `json:"apiKey"`
	KeyID  string `json:"keyId"`
}

// DeleteKeyRequest names a key by its secret or its id.
type DeleteKeyRequest struct {
	APIKey string `json:"apiKey"`
}

// ListKeysRequest filters by workspace when Workspace is set.
type ListKeysRequest struct {
	Workspace string `json:"workspace"`
}

// KeyInfo describes a key without its secret; KeyID stands in for it (D3).
type KeyInfo struct {
	KeyID       string `json:"keyId"`
	Name        string `json:"name"`
	Role        string `json:"role"`
	UserName    string `json:"userName"`
	Workspace   string `json:"workspace"`
	Validity    string `json:"validity"`
	Description string `json:"description"`
}

// KeyList is the reply of RPCAuthKeyList.
type KeyList struct {
	Keys []KeyInfo `json:"keys"`
}

// JWKS is the reply of RPCAuthJWKS: the public keys that verify access tokens.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// JWK is one Ed25519 public key (RFC 8037: kty OKP, crv Ed25519, x base64url).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	X   string `json:"x"`
}

// ---- gpr-scheduler ----

// GPRSpec is what a user asks for (POST /api/v1/gpr and /gpr/waittime).
type GPRSpec struct {
	Name               string   `json:"name"`
	Workspace          string   `json:"workspace"`
	Cluster            string   `json:"cluster"`
	PreferredClusters  []string `json:"preferredClusters"`
	AutoCluster        bool     `json:"autoCluster"`
	AutoGPU            bool     `json:"autoGpu"`
	GPUsPerNode        int      `json:"gpusPerNode"`
	Nodes              int      `json:"nodes"`
	InstanceType       string   `json:"instanceType"`
	GPUShape           string   `json:"gpuShape"`
	MemoryPerGPU       int      `json:"memoryPerGpu"` // GB
	ExitDuration       string   `json:"exitDuration"` // XdYhZm or Go syntax
	Priority           int      `json:"priority"`
	IdleTimeout        *string  `json:"idleTimeout"`
	EnforceIdleTimeout bool     `json:"enforceIdleTimeout"`
	EnableEviction     *bool    `json:"enableEviction"`
	RequeueOnFailure   *bool    `json:"requeueOnFailure"`
}

// CreateGPRRequest is the body of RPCGPRCreate and RPCGPRWaitTime.
type CreateGPRRequest struct {
	Caller Caller  `json:"caller"`
	Spec   GPRSpec `json:"spec"`
}

// CreateGPRReply returns the new id, gpr-<8 hex>-<4 hex>.
type CreateGPRReply struct {
	GPRID string `json:"gprId"`
}

// GPRRef names one GPR on behalf of a caller (get, delete).
type GPRRef struct {
	Caller Caller `json:"caller"`
	GPRID  string `json:"gprId"`
}

// UpdateGPRRequest applies each non-nil field (PUT /api/v1/gpr).
type UpdateGPRRequest struct {
	Caller       Caller  `json:"caller"`
	GPRID        string  `json:"gprId"`
	Priority     *int    `json:"priority"`
	Name         *string `json:"name"`
	EarlyRelease *bool   `json:"earlyRelease"`
}

// ListGPRsRequest lists the GPRs of one workspace.
type ListGPRsRequest struct {
	Caller    Caller `json:"caller"`
	Workspace string `json:"workspace"`
}

// GPR is a GPR as the scheduler reports it.
type GPR struct {
	GPRID              string        `json:"gprId"`
	Name               string        `json:"name"`
	Workspace          string        `json:"workspace"`
	Cluster            string        `json:"cluster"`
	GPUsPerNode        int           `json:"gpusPerNode"`
	Nodes              int           `json:"nodes"`
	InstanceType       string        `json:"instanceType"`
	GPUShape           string        `json:"gpuShape"`
	MemoryPerGPU       int           `json:"memoryPerGpu"`
	Priority           int           `json:"priority"`
	ExitDuration       time.Duration `json:"exitDuration"`
	IdleTimeout        time.Duration `json:"idleTimeout"`
	EnforceIdleTimeout bool          `json:"enforceIdleTimeout"`
	EnableEviction     bool          `json:"enableEviction"`
	RequeueOnFailure   bool          `json:"requeueOnFailure"`
	EarlyRelease       bool          `json:"earlyRelease"`
	State              string        `json:"state"`              // internal state machine state
	ProvisioningStatus string        `json:"provisioningStatus"` // EGS wire value (D14)
	InternalState      string        `json:"internalState"`      // EGS wire value (D14)
	Reason             string        `json:"reason"`             // why it is where it is
	FailureReason      string        `json:"failureReason"`
	GPUsAllocated      int           `json:"gpusAllocated"`
	NodeNames          []string      `json:"nodeNames"`
	CreatedAt          time.Time     `json:"createdAt"`
	StartedAt          time.Time     `json:"startedAt"`   // zero until provisioned
	CompletedAt        time.Time     `json:"completedAt"` // zero until nodes are back
	EstimatedStart     time.Time     `json:"estimatedStart"`
	EstimatedWait      time.Duration `json:"estimatedWait"`
	RetryCount         int           `json:"retryCount"`
	DelayedCount       int           `json:"delayedCount"`
	QueuePosition      int           `json:"queuePosition"`  // 1-based place in the queue; 0 when not queued
	PendingReasons     []Reason      `json:"pendingReasons"` // why it waits; empty when not queued
	EvictedBy          string        `json:"evictedBy"`      // the GPR that evicted it, if any
}

// Reason is one machine-readable cause of a wait, with its human text.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// GPRList is the reply of RPCGPRList, oldest first.
type GPRList struct {
	Items []GPR `json:"items"`
}

// WaitTime is the reply of RPCGPRWaitTime.
type WaitTime struct {
	EstimatedWait  time.Duration `json:"estimatedWait"`
	EstimatedStart time.Time     `json:"estimatedStart"`
}

// Allocation is one node held by one GPR (an entry of the ledger).
type Allocation struct {
	Cluster   string    `json:"cluster"`
	Node      string    `json:"node"`
	GPRID     string    `json:"gprId"`
	GPRName   string    `json:"gprName"`
	Workspace string    `json:"workspace"`
	GPUs      int       `json:"gpus"`
	At        time.Time `json:"at"`
}

// AllocationList is the reply of RPCGPRAllocations.
type AllocationList struct {
	Allocations []Allocation `json:"allocations"`
}

// ---- provisioner ----

// InventoryRequest filters nodes by cluster when Clusters is non-empty.
type InventoryRequest struct {
	Clusters []string `json:"clusters"`
}

// Inventory is the reply of RPCInventoryList, sorted by cluster then node.
type Inventory struct {
	Nodes []events.Node `json:"nodes"`
}

// KubeConfigRequest asks for a kubeconfig of a workspace on one cluster.
type KubeConfigRequest struct {
	Caller    Caller `json:"caller"`
	Workspace string `json:"workspace"`
	Cluster   string `json:"cluster"`
}

// KubeConfig is the reply of RPCKubeConfig: a whole kubeconfig YAML.
type KubeConfig struct {
	KubeConfig string `json:"kubeConfig"`
}

// ClusterRegisterRequest registers a cluster (RPCClusterRegister, admins
// only) or replaces its credentials. KubeConfig is a whole kubeconfig; its
// current context is used. Server, when set, is the API server URL written
// into users' kubeconfigs instead of the one in KubeConfig (an in-cluster
// address users cannot reach, say).
type ClusterRegisterRequest struct {
	Caller     Caller `json:"caller"`
	Name       string `json:"name"`
	KubeConfig string `json:"kubeConfig"`
	Server     string `json:"server,omitempty"`
}

// ClusterRef names a cluster (RPCClusterUnregister, admins only).
type ClusterRef struct {
	Caller Caller `json:"caller"`
	Name   string `json:"name"`
}

// ClusterListRequest asks for the registered clusters (RPCClusterList).
type ClusterListRequest struct {
	Caller Caller `json:"caller"`
}

// ClusterList is the reply of RPCClusterList, sorted by name.
type ClusterList struct {
	Clusters []events.Cluster `json:"clusters"`
}
