package events

// GPRWorkspaceFilter is the subject filter of every event of one workspace's
// GPRs: egs.gpr.v1.<ws>.> (the portal's live updates subscribe to it).
func GPRWorkspaceFilter(workspace string) (string, error) {
	s, err := build("egs.gpr.v1", workspace)
	return s + ".>", err
}

// GPRFilter is the subject filter of every event of one GPR:
// egs.gpr.v1.<ws>.<gprId>.> (the portal reads a GPR's history with it).
func GPRFilter(workspace, gprID string) (string, error) {
	s, err := build("egs.gpr.v1", workspace, gprID)
	return s + ".>", err
}
