package workspace_test

import (
	"testing"
	"time"

	"github.com/open-egs/egs/services/workspace/internal/workspace"
)

func TestParseAndFormatDuration(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    time.Duration
		wantErr bool
		format  string
	}{
		"XdYhZm":          {in: "0d0h5m", want: 5 * time.Minute, format: "0h5m0s"},
		"days only":       {in: "2d", want: 48 * time.Hour, format: "48h0m0s"},
		"hours, minutes":  {in: "1h30m", want: 90 * time.Minute, format: "1h30m0s"},
		"go syntax":       {in: "90s", want: 90 * time.Second, format: "0h1m30s"},
		"366 days":        {in: "366d", want: 366 * 24 * time.Hour, format: "8784h0m0s"},
		"367 days":        {in: "367d", wantErr: true},
		"zero":            {in: "0d0h0m", wantErr: true},
		"negative":        {in: "-5m", wantErr: true},
		"empty":           {in: "", wantErr: true},
		"words":           {in: "5 minutes", wantErr: true},
		"huge day number": {in: "99999999999999999999d", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := workspace.ParseDuration(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseDuration(%q) = %v, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			if f := workspace.FormatDuration(got); f != tc.format {
				t.Errorf("FormatDuration(%v) = %q, want %q", got, f, tc.format)
			}
		})
	}
	if f := workspace.FormatDuration(0); f != "" {
		t.Errorf("FormatDuration(0) = %q, want \"\" (unset)", f)
	}
}
