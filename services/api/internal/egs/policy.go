package egs

import (
	"time"

	"github.com/open-egs/egs/libs/duration"
	"github.com/open-egs/egs/libs/rpc"
)

// ParseDuration reads a duration in either form of D8 (see duration.Parse):
// positive and at most a year.
func ParseDuration(s string) (time.Duration, error) { return duration.Parse(s) }

// PolicyBody is the body of PUT /api/v1/workspace-policy, our addition.
type PolicyBody struct {
	WorkspaceName *string     `json:"workspaceName"`
	Policy        *PolicyWire `json:"policy"`
}

// PolicyWire is a workspace policy on the wire, in requests and responses.
// Zero and null mean "no limit"; maxExitDuration is a D8 duration ("" or
// null: no limit). autoEviction null means the default, true;
// requeueOnFailure null leaves it to each GPR.
type PolicyWire struct {
	AllowedShapes    []string `json:"allowedShapes"`
	MaxGPUsPerGPR    *int     `json:"maxGpusPerGpr"`
	MaxMemoryPerGPU  *int     `json:"maxMemoryPerGpu"`
	MaxQueuedGPRs    *int     `json:"maxQueuedGprs"`
	MaxExitDuration  *string  `json:"maxExitDuration"`
	MinPriority      *int     `json:"minPriority"`
	MaxPriority      *int     `json:"maxPriority"`
	AutoEviction     *bool    `json:"autoEviction"`
	RequeueOnFailure *bool    `json:"requeueOnFailure"`
}

func intOf(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// Request checks the syntax of a policy and converts it for caller. The
// limits themselves (priorities 1-300, min ≤ max, at most 366 days, nothing
// negative) are the workspace service's checks.
func (b PolicyBody) Request(caller rpc.Caller) (rpc.SetPolicyRequest, error) {
	ws, err := WorkspaceName("workspaceName", str(b.WorkspaceName))
	if err != nil {
		return rpc.SetPolicyRequest{}, err
	}
	if b.Policy == nil {
		return rpc.SetPolicyRequest{}, invalid("%q is required", "policy")
	}
	p := b.Policy
	var exit time.Duration
	if s := str(p.MaxExitDuration); s != "" {
		if exit, err = ParseDuration(s); err != nil {
			return rpc.SetPolicyRequest{}, invalid("%q: %v", "maxExitDuration", err)
		}
	}
	return rpc.SetPolicyRequest{Caller: caller, Workspace: ws, Policy: rpc.Policy{
		AllowedShapes:    nonNil(p.AllowedShapes),
		MaxGPUsPerGPR:    intOf(p.MaxGPUsPerGPR),
		MaxMemoryPerGPU:  intOf(p.MaxMemoryPerGPU),
		MaxQueuedGPRs:    intOf(p.MaxQueuedGPRs),
		MaxExitDuration:  exit,
		MinPriority:      intOf(p.MinPriority),
		MaxPriority:      intOf(p.MaxPriority),
		AutoEviction:     p.AutoEviction,
		RequeueOnFailure: p.RequeueOnFailure,
	}}, nil
}

// Policy is a policy as GET and PUT /api/v1/workspace-policy send it: every
// key always present, numbers as numbers (0: no limit), maxExitDuration as
// D8 writes it ("" when unlimited), the two flags null when unset.
type Policy struct {
	AllowedShapes    []string `json:"allowedShapes"`
	MaxGPUsPerGPR    int      `json:"maxGpusPerGpr"`
	MaxMemoryPerGPU  int      `json:"maxMemoryPerGpu"`
	MaxQueuedGPRs    int      `json:"maxQueuedGprs"`
	MaxExitDuration  string   `json:"maxExitDuration"`
	MinPriority      int      `json:"minPriority"`
	MaxPriority      int      `json:"maxPriority"`
	AutoEviction     *bool    `json:"autoEviction"`
	RequeueOnFailure *bool    `json:"requeueOnFailure"`
}

// WorkspacePolicy is the data of GET and PUT /api/v1/workspace-policy.
type WorkspacePolicy struct {
	WorkspaceName string `json:"workspaceName"`
	Policy        Policy `json:"policy"`
}

// FromPolicy converts the policy of workspace w.
func FromPolicy(w rpc.Workspace) WorkspacePolicy {
	p := w.Policy
	exit := ""
	if p.MaxExitDuration > 0 {
		exit = FormatDuration(p.MaxExitDuration)
	}
	return WorkspacePolicy{WorkspaceName: w.Name, Policy: Policy{
		AllowedShapes:    append([]string{}, p.AllowedShapes...),
		MaxGPUsPerGPR:    p.MaxGPUsPerGPR,
		MaxMemoryPerGPU:  p.MaxMemoryPerGPU,
		MaxQueuedGPRs:    p.MaxQueuedGPRs,
		MaxExitDuration:  exit,
		MinPriority:      p.MinPriority,
		MaxPriority:      p.MaxPriority,
		AutoEviction:     p.AutoEviction,
		RequeueOnFailure: p.RequeueOnFailure,
	}}
}

// MoveBody is the body of POST /api/v1/gpr/move ({gprId, direction}), our
// addition: an admin moves a queued GPR one place up or down the queue.
type MoveBody struct {
	GPRID     *string `json:"gprId"`
	Direction *string `json:"direction"`
}

// Request converts a move for caller; gprId is required and direction is
// "up" or "down".
func (b MoveBody) Request(caller rpc.Caller) (rpc.MoveGPRRequest, error) {
	id, err := GPRRefBody{GPRID: b.GPRID}.ID()
	if err != nil {
		return rpc.MoveGPRRequest{}, err
	}
	d := str(b.Direction)
	if d != rpc.MoveUp && d != rpc.MoveDown {
		return rpc.MoveGPRRequest{}, rpc.Errorf(rpc.Invalid, `"direction" must be "up" or "down"`)
	}
	return rpc.MoveGPRRequest{Caller: caller, GPRID: id, Direction: d}, nil
}

// DecideBody is the body of POST /api/v1/gpr/approve ({gprId}) and
// /api/v1/gpr/reject ({gprId, reason}), our additions.
type DecideBody struct {
	GPRID  *string `json:"gprId"`
	Reason *string `json:"reason"`
}

// Request converts a decision for caller; gprId is required, and reason is
// kept only when reject is true (at most 253 printable characters).
func (b DecideBody) Request(caller rpc.Caller, reject bool) (rpc.DecideRequest, error) {
	id, err := GPRRefBody{GPRID: b.GPRID}.ID()
	if err != nil {
		return rpc.DecideRequest{}, err
	}
	req := rpc.DecideRequest{Caller: caller, GPRID: id}
	if reject {
		if r := str(b.Reason); r != "" {
			if !validDisplayName(r, MaxDisplayNameLen) {
				return rpc.DecideRequest{}, displayNameError("reason", MaxDisplayNameLen)
			}
			req.Reason = r
		}
	}
	return req, nil
}
