package events

import "time"

// GPR is the payload of every egs.gpr.v1.<ws>.<gprId>.<event> event: the
// GPR as it stands after the transition, and why it moved.
type GPR struct {
	GPRID              string    `json:"gprId"`
	Workspace          string    `json:"workspace"`
	Name               string    `json:"name"`
	Event              GPREvent  `json:"event"`
	Seq                int       `json:"seq"`   // 1, 2, 3... per GPR; the event id is <gprId>.<seq>
	State              string    `json:"state"` // internal state, see DESIGN.md
	ProvisioningStatus string    `json:"provisioningStatus"`
	Reason             string    `json:"reason"`
	Priority           int       `json:"priority"`
	Cluster            string    `json:"cluster"`
	Nodes              []string  `json:"nodes"`
	GPUsAllocated      int       `json:"gpusAllocated"`
	Percent            int       `json:"percent,omitempty"` // milestone events: 25, 50 or 75
	At                 time.Time `json:"at"`
}

// QueueStatus is the payload of egs.queue.v1.<ws>.<gprId>: a queued GPR's
// place in the queue, when it is expected to start and why it waits. It is
// published when any of these changes, for the head of the queue (see
// docs/events.md), and once with Position 0 when the GPR leaves the queue.
type QueueStatus struct {
	GPRID     string `json:"gprId"`
	Workspace string `json:"workspace"`
	Position  int    `json:"queuePosition"` // 1-based; 0: no longer queued
	Queued    int    `json:"queued"`        // GPRs in the queue
	// EstimatedStart is when it is expected to start if nothing else
	// changes; absent when nothing it may use can ever fit it.
	EstimatedStart *time.Time      `json:"estimatedStartTime,omitempty"`
	PendingReasons []PendingReason `json:"pendingReasons"`
	// DelayedCount is how often its estimated start has moved later.
	DelayedCount int       `json:"delayedCount"`
	At           time.Time `json:"at"`
}

// PendingReason is one machine-readable cause of a wait, with its text.
type PendingReason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Workspace is the payload of egs.workspace.v1.<ws>.<created|deleted>.
type Workspace struct {
	Name       string    `json:"name"`
	Clusters   []string  `json:"clusters"`
	Namespaces []string  `json:"namespaces"`
	Username   string    `json:"username"`
	Email      string    `json:"email"`
	At         time.Time `json:"at"`
}

// Node is one GPU node as the provisioner reads it from Kubernetes. It is the
// payload of egs.inventory.v1.<cluster>.<node>.<updated|deleted> and the value
// of the inventory bucket.
type Node struct {
	Cluster       string            `json:"cluster"`
	Name          string            `json:"name"`
	InstanceType  string            `json:"instanceType"`  // node.kubernetes.io/instance-type
	GPUProduct    string            `json:"gpuProduct"`    // nvidia.com/gpu.product
	GPUMemoryGB   int               `json:"gpuMemoryGB"`   // nvidia.com/gpu.memory (MiB on the label) in GB
	GPUCount      int               `json:"gpuCount"`      // capacity nvidia.com/gpu
	Managed       bool              `json:"managed"`       // false when labelled egs.io/managed=false
	Ready         bool              `json:"ready"`         // NodeReady condition
	Unschedulable bool              `json:"unschedulable"` // spec.unschedulable (cordoned)
	CloudProvider string            `json:"cloudProvider"`
	Region        string            `json:"region"`
	Workspace     string            `json:"workspace"` // egs.io/workspace label, "" when not handed over
	GPRID         string            `json:"gprId"`     // egs.io/gpr label
	Labels        map[string]string `json:"labels,omitempty"`
	At            time.Time         `json:"at"`
}

// Healthy reports whether the node can take new work.
func (n Node) Healthy() bool { return n.Ready && !n.Unschedulable && n.GPUCount > 0 }

// ProvisionCommand is the body of egs.cmd.v1.provisioner.<apply|remove>: hand
// the nodes of one GPR over to its workspace, or take them back. The same
// command may arrive more than once; applying it twice is harmless.
type ProvisionCommand struct {
	GPRID      string   `json:"gprId"`
	Workspace  string   `json:"workspace"`
	Cluster    string   `json:"cluster"`
	Nodes      []string `json:"nodes"`
	Namespaces []string `json:"namespaces"`
	Seq        int      `json:"seq"` // the GPR event seq that ordered it; echoed in the result
}

// ProvisionResult is the payload of egs.provision.v1.<ws>.<gprId>.<applied|removed|failed>.
type ProvisionResult struct {
	GPRID     string    `json:"gprId"`
	Workspace string    `json:"workspace"`
	Cluster   string    `json:"cluster"`
	Nodes     []string  `json:"nodes"`
	Seq       int       `json:"seq"`
	Error     string    `json:"error,omitempty"` // failed only
	At        time.Time `json:"at"`
}

// APIKey is the payload of egs.auth.v1.apikey.<keyId>.<created|deleted>. It
// never carries the secret or its hash.
type APIKey struct {
	KeyID     string    `json:"keyId"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Workspace string    `json:"workspace"`
	UserName  string    `json:"userName"`
	At        time.Time `json:"at"`
}
