package events

import "time"

// Telemetry stream and subjects (owner: telemetry; the node agents publish
// samples into it, the telemetry service declares it).
const (
	StreamTelemetry     = "EGS_TELEMETRY"
	SubjectTelemetryAll = "egs.telemetry.v1.>"
	// SubjectTelemetryGPUAll selects the GPU sample batches of every node.
	SubjectTelemetryGPUAll = "egs.telemetry.v1.gpu.>"
	// SubjectTelemetryIdleAll selects the idle reports of every GPR.
	SubjectTelemetryIdleAll = "egs.telemetry.v1.idle.>"

	// DurableSchedulerIdle is the scheduler's consumer of idle reports.
	DurableSchedulerIdle = "gpr-scheduler-idle"
)

// TelemetryGPUSubject is egs.telemetry.v1.gpu.<cluster>.<node token>: one
// batch of samples of every GPU of one node.
func TelemetryGPUSubject(cluster, node string) (string, error) {
	return build("egs.telemetry.v1.gpu", cluster, NodeToken(node))
}

// TelemetryIdleSubject is egs.telemetry.v1.idle.<ws>.<gprId>: every GPU of a
// provisioned GPR has been idle for its idleTimeOutDuration.
func TelemetryIdleSubject(workspace, gprID string) (string, error) {
	return build("egs.telemetry.v1.idle", workspace, gprID)
}

// TelemetryAlertSubject is egs.telemetry.v1.alert.<cluster>.<node token>.<kind>
// (kind: power, temperature, xid, ecc), for threshold and error events.
func TelemetryAlertSubject(cluster, node, kind string) (string, error) {
	return build("egs.telemetry.v1.alert", cluster, NodeToken(node), kind)
}

// GPRIdle is the payload of egs.telemetry.v1.idle.<ws>.<gprId>.
type GPRIdle struct {
	GPRID     string    `json:"gprId"`
	Workspace string    `json:"workspace"`
	IdleSince time.Time `json:"idleSince"`
	GPUs      []string  `json:"gpus"` // UUIDs of the GPR's GPUs, all idle
	At        time.Time `json:"at"`
}
