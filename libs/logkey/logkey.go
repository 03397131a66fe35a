// Package logkey holds the structured-log keys every service uses, so one
// query finds an entity in every service's logs.
package logkey

// The keys.
const (
	Service   = "service"
	Err       = "err"
	EventID   = "event_id"
	EventType = "event_type"
	Subject   = "subject"
	Workspace = "workspace"
	GPRID     = "gpr_id"
	Cluster   = "cluster"
	Node      = "node"
	State     = "state"
	Reason    = "reason"
)
