package apikey_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/open-egs/egs/services/auth/internal/apikey"
)

var now = time.Date(2026, 11, 27, 15, 4, 5, 0, time.UTC)

func TestNew(t *testing.T) {
	const secret = "5067bd55-1aef-4c84-8987-3e966e917f07"
	hash := apikey.Hash(secret)
	base := apikey.Spec{Name: "ws-key", UserName: "u", Description: "d", Role: "Editor", Validity: "2026-12-31",
		Workspace: "team-a"}
	tests := map[string]struct {
		edit    func(*apikey.Spec)
		want    apikey.Key
		wantErr string
	}{
		"editor": {
			edit: func(*apikey.Spec) {},
			want: apikey.Key{ID: "ak-" + hash[:20], Hash: hash, Name: "ws-key", Role: apikey.Editor, UserName: "u",
				Description: "d", Workspace: "team-a", Validity: "2026-12-31", CreatedAt: now},
		},
		"owner drops the workspace": {
			edit: func(s *apikey.Spec) { s.Role = "Owner" },
			want: apikey.Key{ID: "ak-" + hash[:20], Hash: hash, Name: "ws-key", Role: apikey.Owner, UserName: "u",
				Description: "d", Validity: "2026-12-31", CreatedAt: now},
		},
		"valid until today": {
			edit: func(s *apikey.Spec) { s.Validity = "2026-11-27"; s.Role = "Viewer" },
			want: apikey.Key{ID: "ak-" + hash[:20], Hash: hash, Name: "ws-key", Role: apikey.Viewer, UserName: "u",
				Description: "d", Workspace: "team-a", Validity: "2026-11-27", CreatedAt: now},
		},
		"empty name":                 {edit: func(s *apikey.Spec) { s.Name = " " }, wantErr: "name is required"},
		"long name":                  {edit: func(s *apikey.Spec) { s.Name = strings.Repeat("n", 129) }, wantErr: "at most"},
		"bad role":                   {edit: func(s *apikey.Spec) { s.Role = "Admin" }, wantErr: "role"},
		"lower case role":            {edit: func(s *apikey.Spec) { s.Role = "owner" }, wantErr: "role"},
		"editor without workspace":   {edit: func(s *apikey.Spec) { s.Workspace = "" }, wantErr: "workspaceName is required"},
		"viewer without workspace":   {edit: func(s *apikey.Spec) { s.Role = "Viewer"; s.Workspace = "" }, wantErr: "workspaceName"},
		"validity yesterday":         {edit: func(s *apikey.Spec) { s.Validity = "2026-11-26" }, wantErr: "in the past"},
		"validity not a date":        {edit: func(s *apikey.Spec) { s.Validity = "31.12.2026" }, wantErr: "YYYY-MM-DD"},
		"validity with a time":       {edit: func(s *apikey.Spec) { s.Validity = "2026-12-31T00:00:00Z" }, wantErr: "YYYY-MM-DD"},
		"validity impossible day":    {edit: func(s *apikey.Spec) { s.Validity = "2026-02-30" }, wantErr: "YYYY-MM-DD"},
		"validity empty":             {edit: func(s *apikey.Spec) { s.Validity = "" }, wantErr: "YYYY-MM-DD"},
		"validity without zero pads": {edit: func(s *apikey.Spec) { s.Validity = "2026-12-1" }, wantErr: "YYYY-MM-DD"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			spec := base
			tc.edit(&spec)
			got, err := apikey.New(spec, secret, now)
			if tc.wantErr != "" {
				var ve *apikey.ValidationError
				if !errors.As(err, &ve) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New() error = %v, want a *ValidationError containing %q", err, tc.wantErr)
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

func TestExpired(t *testing.T) {
	k := apikey.Key{Validity: "2026-11-27"}
	tests := map[string]struct {
		at   time.Time
		want bool
	}{
		"day before":               {at: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), want: false},
		"start of the day":         {at: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC), want: false},
		"last instant of the day":  {at: time.Date(2026, 11, 27, 23, 59, 59, 999999999, time.UTC), want: false},
		"midnight after":           {at: time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC), want: true},
		"next day":                 {at: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), want: true},
		"local time, still in UTC": {at: time.Date(2026, 11, 28, 0, 30, 0, 0, time.FixedZone("CET", 3600)), want: false},
		"local time, past in UTC":  {at: time.Date(2026, 11, 27, 19, 0, 0, 0, time.FixedZone("EST", -5*3600)), want: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := k.Expired(tc.at); got != tc.want {
				t.Errorf("Expired(%v) = %v, want %v", tc.at, got, tc.want)
			}
		})
	}
	if !(apikey.Key{Validity: "garbage"}).Expired(now) {
		t.Error("a key with an unparsable validity must count as expired")
	}
}

func TestSecret(t *testing.T) {
	uuid4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 100 {
		s := apikey.NewSecret()
		if !uuid4.MatchString(s) {
			t.Fatalf("NewSecret() = %q, not a UUID v4", s)
		}
		if seen[s] {
			t.Fatalf("NewSecret() repeated %q", s)
		}
		seen[s] = true
	}
	s := apikey.NewSecret()
	k, err := apikey.New(apikey.Spec{Name: "n", Role: "Owner", Validity: "2099-12-31"}, s, now)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		secret string
		want   bool
	}{
		"same secret":  {secret: s, want: true},
		"other secret": {secret: apikey.NewSecret(), want: false},
		"the hash":     {secret: k.Hash, want: false},
		"the id":       {secret: k.ID, want: false},
		"empty":        {secret: "", want: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := k.Matches(tc.secret); got != tc.want {
				t.Errorf("Matches(%q) = %v, want %v", tc.secret, got, tc.want)
			}
		})
	}
	if want := regexp.MustCompile(`^ak-[0-9a-f]{20}$`); !want.MatchString(k.ID) || strings.Contains(k.ID, s) {
		t.Errorf("id %q: want ak-<20 hex> of the hash", k.ID)
	}
}
