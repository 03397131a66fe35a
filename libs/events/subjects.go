package events

import (
	"fmt"
	"strings"
	"time"
)

// Streams. Each is declared (create-or-update) by its owning service at start-up.
const (
	StreamWorkspace  = "EGS_WORKSPACE" // owner: workspace
	StreamGPR        = "EGS_GPR"       // owner: gpr-scheduler
	StreamQueue      = "EGS_QUEUE"     // owner: gpr-scheduler; the last queue status per GPR
	StreamSession    = "EGS_SESSION"   // owner: api (the edge); portal session audit events
	StreamInventory  = "EGS_INVENTORY" // owner: provisioner
	StreamProvision  = "EGS_PROVISION" // owner: provisioner
	StreamCommands   = "EGS_CMD"       // work queue; declared by every consumer of commands
	StreamAuth       = "EGS_AUTH"      // owner: auth
	StreamDeadLetter = "EGS_DLQ"       // declared by bus.Consume users
)

// Subject filters of the streams above.
const (
	SubjectWorkspaceAll  = "egs.workspace.v1.>"
	SubjectGPRAll        = "egs.gpr.v1.>"
	SubjectQueueAll      = "egs.queue.v1.>"
	SubjectSessionAll    = "egs.session.v1.>"
	SubjectInventoryAll  = "egs.inventory.v1.>"
	SubjectProvisionAll  = "egs.provision.v1.>"
	SubjectCommandsAll   = "egs.cmd.v1.>"
	SubjectAuthAll       = "egs.auth.v1.>"
	SubjectDeadLetterAll = "egs.dlq.v1.>"

	// SubjectWorkspaceDeleted selects the deleted event of every workspace.
	SubjectWorkspaceDeleted = "egs.workspace.v1.*.deleted"

	// SubjectProvisionerCommands selects every command addressed to the provisioner.
	SubjectProvisionerCommands = "egs.cmd.v1.provisioner.>"
)

// KV buckets, each written by exactly one service (its owner); others may read.
const (
	BucketWorkspaces = "EGS_WORKSPACES" // owner: workspace
	BucketGPRs       = "EGS_GPRS"       // owner: gpr-scheduler
	BucketLedger     = "EGS_LEDGER"     // owner: gpr-scheduler; key <cluster>.<node> → allocation
	BucketInventory  = "EGS_INVENTORY"  // owner: provisioner; key <cluster>.<node> → Node
	BucketAPIKeys    = "EGS_APIKEYS"    // owner: auth; key = key id, value holds only a hash
	BucketGPRLease   = "EGS_GPR_LEASE"  // owner: gpr-scheduler; key "leader" → the active replica
)

// Durable consumer names: <consumer-service>-<purpose>. Renaming one replays its stream.
const (
	DurableProvisionerCommands = "provisioner-commands"
	DurableSchedulerProvision  = "gpr-scheduler-provision"
)

// GPR event names, the last token of egs.gpr.v1.<workspace>.<gprId>.<event>.
type GPREvent string

// The GPR events, in lifecycle order.
const (
	GPRCreated         GPREvent = "created"
	GPRQueued          GPREvent = "queued"
	GPRAdmitted        GPREvent = "admitted"
	GPRProvisioned     GPREvent = "provisioned"
	GPRMilestone       GPREvent = "milestone"
	GPRExpiring        GPREvent = "expiring" // its exit is near (gpr.ExitWarningLead)
	GPRReleased        GPREvent = "released"
	GPRCompleted       GPREvent = "completed"
	GPRFailed          GPREvent = "failed"
	GPREvicted         GPREvent = "evicted"
	GPRPendingApproval GPREvent = "pending-approval"
	GPRRejected        GPREvent = "rejected"
	GPRCancelled       GPREvent = "cancelled"
	GPRUpdated         GPREvent = "updated"
)

// Workspace event names.
const (
	WorkspaceCreated = "created"
	WorkspaceDeleted = "deleted"
)

// Inventory event names.
const (
	NodeUpdated = "updated"
	NodeDeleted = "deleted"
)

// Provision event names (the provisioner's reports on allocations).
const (
	ProvisionApplied = "applied"
	ProvisionRemoved = "removed"
	ProvisionFailed  = "failed"
)

// Provisioner command verbs.
const (
	CommandApply  = "apply"
	CommandRemove = "remove"
)

// ValidToken reports whether s may be used as one subject token: lowercase
// letters, digits, '-' and '_', 1..128 characters.
func ValidToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// NodeToken maps a Kubernetes node name (which may contain dots and upper-case
// letters) to a subject and key token: dots become '_', letters are lowered.
// Payloads always carry the real name.
func NodeToken(node string) string {
	return strings.NewReplacer(".", "_").Replace(strings.ToLower(node))
}

func build(prefix string, toks ...string) (string, error) {
	var b strings.Builder
	b.WriteString(prefix)
	for _, t := range toks {
		if !ValidToken(t) {
			return "", fmt.Errorf("%q is not a valid subject token", t)
		}
		b.WriteByte('.')
		b.WriteString(t)
	}
	return b.String(), nil
}

// GPRSubject is the subject of one event of one GPR: egs.gpr.v1.<ws>.<gprId>.<event>.
func GPRSubject(workspace, gprID string, ev GPREvent) (string, error) {
	return build("egs.gpr.v1", workspace, gprID, string(ev))
}

// SessionAuditSubject is egs.session.v1.<id>.<event>: an audit event of the
// edge about portal sessions (created, logged-out, revoked).
func SessionAuditSubject(id, ev string) (string, error) {
	return build("egs.session.v1", id, ev)
}

// QueueStatusSubject is egs.queue.v1.<ws>.<gprId>: where a queued GPR
// stands (stream EGS_QUEUE keeps the last one per GPR).
func QueueStatusSubject(workspace, gprID string) (string, error) {
	return build("egs.queue.v1", workspace, gprID)
}

// WorkspaceSubject is egs.workspace.v1.<ws>.<event>.
func WorkspaceSubject(workspace, ev string) (string, error) {
	return build("egs.workspace.v1", workspace, ev)
}

// InventorySubject is egs.inventory.v1.<cluster>.<node>.<event>, the node as NodeToken.
func InventorySubject(cluster, node, ev string) (string, error) {
	return build("egs.inventory.v1", cluster, NodeToken(node), ev)
}

// ProvisionSubject is egs.provision.v1.<ws>.<gprId>.<event>.
func ProvisionSubject(workspace, gprID, ev string) (string, error) {
	return build("egs.provision.v1", workspace, gprID, ev)
}

// ProvisionerCommandSubject is egs.cmd.v1.provisioner.<verb>.
func ProvisionerCommandSubject(verb string) (string, error) {
	return build("egs.cmd.v1.provisioner", verb)
}

// APIKeySubject is egs.auth.v1.apikey.<keyId>.<event> (created, deleted).
func APIKeySubject(keyID, ev string) (string, error) {
	return build("egs.auth.v1.apikey", keyID, ev)
}

// DeadLetterSubject is egs.dlq.v1.<stream>.<durable>; the stream name is lowered.
func DeadLetterSubject(stream, durable string) (string, error) {
	return build("egs.dlq.v1", strings.ToLower(stream), durable)
}

// NodeKey is the KV key of a node in the inventory and the ledger: <cluster>.<node token>.
func NodeKey(cluster, node string) string {
	return cluster + "." + NodeToken(node)
}

// EventType is the CloudEvents type of an event: io.egs.<domain>.<event>.v1.
func EventType(domain, ev string) string {
	return "io.egs." + domain + "." + ev + ".v1"
}

// BucketClusters holds the registered clusters (owner: provisioner); key = cluster name.
const BucketClusters = "EGS_CLUSTERS"

// BucketClusterCredentials holds the credentials of clusters that admins
// registered at run time (owner: provisioner); key = cluster name, value =
// the kubeconfig sealed with AES-256-GCM (never readable without the
// provisioner's key).
const BucketClusterCredentials = "EGS_CLUSTER_CREDENTIALS"

// Durable consumers of workspace deletions.
const (
	DurableSchedulerWorkspaces = "gpr-scheduler-workspaces"
	DurableAuthWorkspaces      = "auth-workspaces"
)

// Request/reply subjects, egs.rpc.v1.<service>.<method>, served with nats.go/micro
// in a queue group named after the service so replicas share the load.
const (
	RPCWorkspaceCreate = "egs.rpc.v1.workspace.create"
	RPCWorkspaceDelete = "egs.rpc.v1.workspace.delete"
	RPCWorkspaceList   = "egs.rpc.v1.workspace.list"
	RPCWorkspaceGet    = "egs.rpc.v1.workspace.get"
	RPCWorkspacePolicy = "egs.rpc.v1.workspace.set-policy"

	RPCTemplateCreate = "egs.rpc.v1.workspace.template-create"
	RPCTemplateGet    = "egs.rpc.v1.workspace.template-get"
	RPCTemplateList   = "egs.rpc.v1.workspace.template-list"
	RPCTemplateUpdate = "egs.rpc.v1.workspace.template-update"
	RPCTemplateDelete = "egs.rpc.v1.workspace.template-delete"
	RPCBindingCreate  = "egs.rpc.v1.workspace.binding-create"
	RPCBindingGet     = "egs.rpc.v1.workspace.binding-get"
	RPCBindingList    = "egs.rpc.v1.workspace.binding-list"
	RPCBindingUpdate  = "egs.rpc.v1.workspace.binding-update"
	RPCBindingDelete  = "egs.rpc.v1.workspace.binding-delete"

	RPCAuthExchange  = "egs.rpc.v1.auth.exchange"
	RPCAuthKeyCreate = "egs.rpc.v1.auth.apikey-create"
	RPCAuthKeyDelete = "egs.rpc.v1.auth.apikey-delete"
	RPCAuthKeyList   = "egs.rpc.v1.auth.apikey-list"
	RPCAuthJWKS      = "egs.rpc.v1.auth.jwks"

	RPCGPRCreate      = "egs.rpc.v1.gpr-scheduler.create"
	RPCGPRGet         = "egs.rpc.v1.gpr-scheduler.get"
	RPCGPRList        = "egs.rpc.v1.gpr-scheduler.list"
	RPCGPRUpdate      = "egs.rpc.v1.gpr-scheduler.update"
	RPCGPRDelete      = "egs.rpc.v1.gpr-scheduler.delete"
	RPCGPRWaitTime    = "egs.rpc.v1.gpr-scheduler.waittime"
	RPCGPRAllocations = "egs.rpc.v1.gpr-scheduler.allocations"
	RPCGPRApprove     = "egs.rpc.v1.gpr-scheduler.approve"
	RPCGPRReject      = "egs.rpc.v1.gpr-scheduler.reject"
	RPCGPRMove        = "egs.rpc.v1.gpr-scheduler.move"

	RPCInventoryList = "egs.rpc.v1.provisioner.inventory"
	RPCKubeConfig    = "egs.rpc.v1.provisioner.kubeconfig"

	RPCClusterRegister   = "egs.rpc.v1.provisioner.cluster-register"
	RPCClusterUnregister = "egs.rpc.v1.provisioner.cluster-unregister"
	RPCClusterList       = "egs.rpc.v1.provisioner.cluster-list"
)

// Cluster is the value of the clusters bucket: a cluster the provisioner serves.
type Cluster struct {
	Name      string `json:"name"`
	Simulated bool   `json:"simulated"`
	// Registered is true for a cluster an admin registered at run time
	// (credentials in BucketClusterCredentials), false for one from the
	// provisioner's configuration.
	Registered bool `json:"registered,omitempty"`
	// Unhealthy is true while the provisioner cannot reach the cluster's
	// API server; Error says why.
	Unhealthy bool      `json:"unhealthy,omitempty"`
	Error     string    `json:"error,omitempty"`
	At        time.Time `json:"at"`
}
