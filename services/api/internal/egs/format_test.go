package egs

import (
	"testing"
	"time"
)

func TestFormatDuration(t *testing.T) {
	tests := map[string]struct {
		in   time.Duration
		want string
	}{
		"zero":            {0, "0h0m0s"},
		"five minutes":    {5 * time.Minute, "0h5m0s"},
		"one minute":      {time.Minute, "0h1m0s"},
		"hours unbounded": {26 * time.Hour, "26h0m0s"},
		"mixed":           {time.Hour + 30*time.Minute + 15*time.Second, "1h30m15s"},
		"fraction rounds": {2*time.Minute + 40*time.Second + 999*time.Millisecond, "0h2m41s"},
		"negative":        {-time.Minute, "0h0m0s"},
		"many days":       {100*24*time.Hour + 59*time.Minute + 59*time.Second, "2400h59m59s"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := FormatDuration(tc.in); got != tc.want {
				t.Errorf("FormatDuration(%v) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestFormatTime(t *testing.T) {
	ist := time.FixedZone("IST", 5*3600+1800)
	tests := map[string]struct {
		in   time.Time
		want string
	}{
		"zero":         {time.Time{}, ""},
		"utc":          {time.Date(2024, 12, 24, 8, 13, 8, 0, time.UTC), "2024-12-24T08:13:08Z"},
		"other zone":   {time.Date(2024, 12, 24, 13, 43, 8, 0, ist), "2024-12-24T08:13:08Z"},
		"nanos cut":    {time.Date(2024, 12, 24, 8, 13, 8, 999, time.UTC), "2024-12-24T08:13:08Z"},
		"unix seconds": {time.Unix(1735025703, 0), "2024-12-24T07:35:03Z"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := FormatTime(tc.in); got != tc.want {
				t.Errorf("FormatTime(%v) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestValidName(t *testing.T) {
	tests := map[string]struct {
		in   string
		want bool
	}{
		"simple":          {"ws", true},
		"digits and dash": {"worker-1", true},
		"one char":        {"a", true},
		"63 chars":        {"a23456789012345678901234567890123456789012345678901234567890123", true},
		"64 chars":        {"a234567890123456789012345678901234567890123456789012345678901234", false},
		"empty":           {"", false},
		"upper":           {"Ws", false},
		"space":           {"my ws", false},
		"dot":             {"a.b", false},
		"underscore":      {"a_b", false},
		"leading dash":    {"-a", false},
		"trailing dash":   {"a-", false},
		"ampersand":       {"a&b", false},
		"wildcard":        {"*", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := ValidName(tc.in); got != tc.want {
				t.Errorf("ValidName(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}
