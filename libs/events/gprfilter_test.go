package events

import "testing"

func TestGPRFilters(t *testing.T) {
	for name, tc := range map[string]struct {
		got     func() (string, error)
		want    string
		wantErr bool
	}{
		"workspace":          {func() (string, error) { return GPRWorkspaceFilter("team-a") }, "egs.gpr.v1.team-a.>", false},
		"one gpr":            {func() (string, error) { return GPRFilter("team-a", "gpr-1234abcd-ef01") }, "egs.gpr.v1.team-a.gpr-1234abcd-ef01.>", false},
		"wildcard workspace": {func() (string, error) { return GPRWorkspaceFilter("*") }, "", true},
		"dotted gpr id":      {func() (string, error) { return GPRFilter("team-a", "a.b") }, "", true},
		"empty workspace":    {func() (string, error) { return GPRWorkspaceFilter("") }, "", true},
		"full-wildcard gpr":  {func() (string, error) { return GPRFilter("team-a", ">") }, "", true},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := tc.got()
			if tc.wantErr {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
