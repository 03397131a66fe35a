package egs

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		"XdYhZm":    {in: "1d2h3m", want: 26*time.Hour + 3*time.Minute},
		"days":      {in: "2d", want: 48 * time.Hour},
		"go syntax": {in: "1h30m", want: 90 * time.Minute},
		"seconds":   {in: "90s", want: 90 * time.Second},
		"words":     {in: "soon", wantErr: true},
		"empty":     {in: "", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseDuration(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("ParseDuration(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}
