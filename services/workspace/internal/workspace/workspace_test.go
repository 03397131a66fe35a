package workspace_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/open-egs/egs/services/workspace/internal/workspace"
)

func validSpec() workspace.Spec {
	return workspace.Spec{Name: "team-a", Clusters: []string{"worker-1"}, Namespaces: []string{"ns1"},
		Username: "u", Email: "e@x"}
}

func TestNew(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	tests := map[string]struct {
		edit    func(*workspace.Spec)
		want    workspace.Workspace
		wantErr string // substring of the validation message; "" means valid
	}{
		"valid": {
			edit: func(*workspace.Spec) {},
			want: workspace.Workspace{Name: "team-a", Clusters: []string{"worker-1"}, Namespaces: []string{"ns1"},
				Username: "u", Email: "e@x", CreatedAt: now.UTC()},
		},
		"namespaces default to the name": {
			edit: func(s *workspace.Spec) { s.Namespaces = nil },
			want: workspace.Workspace{Name: "team-a", Clusters: []string{"worker-1"}, Namespaces: []string{"team-a"},
				Username: "u", Email: "e@x", CreatedAt: now.UTC()},
		},
		"63 character name": {
			edit: func(s *workspace.Spec) { s.Name = strings.Repeat("a", 63); s.Namespaces = []string{"n"} },
			want: workspace.Workspace{Name: strings.Repeat("a", 63), Clusters: []string{"worker-1"},
				Namespaces: []string{"n"}, Username: "u", Email: "e@x", CreatedAt: now.UTC()},
		},
		"empty name":             {edit: func(s *workspace.Spec) { s.Name = "" }, wantErr: "workspaceName is required"},
		"64 character name":      {edit: func(s *workspace.Spec) { s.Name = strings.Repeat("a", 64) }, wantErr: "DNS label"},
		"upper case name":        {edit: func(s *workspace.Spec) { s.Name = "Team" }, wantErr: "DNS label"},
		"name with dot":          {edit: func(s *workspace.Spec) { s.Name = "a.b" }, wantErr: "DNS label"},
		"name ends with dash":    {edit: func(s *workspace.Spec) { s.Name = "a-" }, wantErr: "DNS label"},
		"name starts with dash":  {edit: func(s *workspace.Spec) { s.Name = "-a" }, wantErr: "DNS label"},
		"no clusters":            {edit: func(s *workspace.Spec) { s.Clusters = nil }, wantErr: "clusters must not be empty"},
		"duplicate cluster":      {edit: func(s *workspace.Spec) { s.Clusters = []string{"c", "c"} }, wantErr: "listed twice"},
		"cluster with wildcard":  {edit: func(s *workspace.Spec) { s.Clusters = []string{"c.*"} }, wantErr: "not a valid cluster"},
		"empty cluster":          {edit: func(s *workspace.Spec) { s.Clusters = []string{""} }, wantErr: "not a valid cluster"},
		"bad namespace":          {edit: func(s *workspace.Spec) { s.Namespaces = []string{"Ns"} }, wantErr: `namespace "Ns"`},
		"duplicate namespace":    {edit: func(s *workspace.Spec) { s.Namespaces = []string{"a", "a"} }, wantErr: "listed twice"},
		"empty username":         {edit: func(s *workspace.Spec) { s.Username = " " }, wantErr: "username is required"},
		"email without at":       {edit: func(s *workspace.Spec) { s.Email = "ex" }, wantErr: "email"},
		"email with two ats":     {edit: func(s *workspace.Spec) { s.Email = "a@b@c" }, wantErr: "email"},
		"email without local":    {edit: func(s *workspace.Spec) { s.Email = "@x" }, wantErr: "email"},
		"email without domain":   {edit: func(s *workspace.Spec) { s.Email = "e@" }, wantErr: "email"},
		"empty email":            {edit: func(s *workspace.Spec) { s.Email = "" }, wantErr: "email"},
		"email with white space": {edit: func(s *workspace.Spec) { s.Email = "a b@x" }, wantErr: "email"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			spec := validSpec()
			tc.edit(&spec)
			got, err := workspace.New(spec, now)
			if tc.wantErr != "" {
				var ve *workspace.ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("New() error = %v, want a *ValidationError", err)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New() error = %q, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New() error = %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("New() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewCopiesSlices(t *testing.T) {
	spec := validSpec()
	ws, err := workspace.New(spec, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	spec.Clusters[0] = "changed"
	if ws.Clusters[0] != "worker-1" {
		t.Errorf("workspace shares the caller's clusters slice: %v", ws.Clusters)
	}
}
