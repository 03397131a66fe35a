package duration

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		"egs minutes":        {in: "0d0h5m", want: 5 * time.Minute},
		"egs days":           {in: "2d", want: 48 * time.Hour},
		"egs hours minutes":  {in: "1h30m", want: 90 * time.Minute},
		"egs all parts":      {in: "1d2h3m", want: 26*time.Hour + 3*time.Minute},
		"go seconds":         {in: "90s", want: 90 * time.Second},
		"go mixed":           {in: "1h0m30s", want: time.Hour + 30*time.Second},
		"spaces trimmed":     {in: " 5m ", want: 5 * time.Minute},
		"empty":              {in: "", wantErr: true},
		"garbage":            {in: "abc", wantErr: true},
		"zero":               {in: "0d0h0m", wantErr: true},
		"negative":           {in: "-5m", wantErr: true},
		"more than a year":   {in: "400d", wantErr: true},
		"units out of order": {in: "5m2d", wantErr: true},
		"huge number":        {in: "99999999999d", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Parse(%q) error = %v, wantErr %v", tc.in, err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("Parse(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	tests := map[string]struct {
		in   time.Duration
		want string
	}{
		"zero":          {0, "0h0m0s"},
		"five minutes":  {5 * time.Minute, "0h5m0s"},
		"over a day":    {26 * time.Hour, "26h0m0s"},
		"seconds round": {90*time.Second + 400*time.Millisecond, "0h1m30s"},
		"negative":      {-time.Minute, "0h0m0s"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Format(tc.in); got != tc.want {
				t.Fatalf("Format(%v) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
