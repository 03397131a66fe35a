package standalone_test

import (
	"testing"
	"time"
)

// A workspace policy sends a GPR beyond it to approval: it waits (Queued on
// the wire, with an AWAITING_APPROVAL reason) until an admin approves it,
// then runs; a rejected one ends in Error.
func TestPolicyApproval(t *testing.T) {
	p := start(t, t.TempDir())
	p.login()
	p.must("POST", "/api/v1/slice-workspace", map[string]any{"workspaceName": "team-p", "clusters": []string{"worker-1"},
		"namespaces": []string{"team-p"}, "username": "pat", "email": "pat@example.com"}, nil)
	p.must("PUT", "/api/v1/workspace-policy", map[string]any{"workspaceName": "team-p",
		"policy": map[string]any{"maxGpusPerGpr": 8, "maxExitDuration": "2h"}}, nil)

	type pending struct {
		GPRID  string `json:"gprId"`
		Status struct {
			ProvisioningStatus string `json:"provisioningStatus"`
			FailureReason      string `json:"failureReason"`
		} `json:"status"`
		PendingReasons []struct{ Code, Message string } `json:"pendingReasons"`
		QueuePosition  int                              `json:"queuePosition"`
	}
	// Too long for the policy: it awaits approval, and is not scheduled.
	var long struct{ GPRID string }
	p.must("POST", "/api/v1/gpr", with(gprBody("team-p", "long"), "exitDuration", "0d5h0m"), &long)
	time.Sleep(200 * time.Millisecond)
	var g pending
	p.must("GET", "/api/v1/gpr?gprId="+long.GPRID, nil, &g)
	if g.Status.ProvisioningStatus != "Queued" || len(g.PendingReasons) == 0 || g.PendingReasons[0].Code != "AWAITING_APPROVAL" || g.QueuePosition != 0 {
		t.Fatalf("over-policy GPR: %+v", g)
	}
	// Unknown ids are 404.
	if code, _ := p.call("POST", "/api/v1/gpr/approve", map[string]string{"gprId": "gpr-00000000-0000"}); code != 404 {
		t.Errorf("approve unknown: %d, want 404", code)
	}
	p.must("POST", "/api/v1/gpr/approve", map[string]string{"gprId": long.GPRID}, nil)
	p.waitGPR(long.GPRID, "Successful/Provisioned", 10*time.Second)
	if code, env := p.call("POST", "/api/v1/gpr/approve", map[string]string{"gprId": long.GPRID}); code != 409 {
		t.Errorf("approve twice: %d %s, want 409", code, env.Message)
	}

	// Too many GPUs: rejected.
	var big struct{ GPRID string }
	p.must("POST", "/api/v1/gpr", with(gprBody("team-p", "big"), "numberOfGPUNodes", 2), &big)
	p.must("POST", "/api/v1/gpr/reject", map[string]string{"gprId": big.GPRID, "reason": "too big this week"}, nil)
	p.must("GET", "/api/v1/gpr?gprId="+big.GPRID, nil, &g)
	if g.Status.ProvisioningStatus != "Error" || g.Status.FailureReason == "" {
		t.Fatalf("rejected GPR: %+v", g.Status)
	}
}
