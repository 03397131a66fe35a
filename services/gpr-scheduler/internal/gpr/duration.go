package gpr

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var dhm = regexp.MustCompile(`^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$`)

// ParseDuration accepts the EGS form XdYhZm (each part optional, at least one
// present, e.g. "0d0h5m", "2d", "1h30m") and Go's syntax ("1h30m", "90s").
// Negative and zero durations are refused.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("duration is empty")
	}
	var d time.Duration
	if m := dhm.FindStringSubmatch(s); m != nil && (m[1] != "" || m[2] != "" || m[3] != "") {
		for i, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute} {
			if m[i+1] == "" {
				continue
			}
			n, err := strconv.ParseInt(m[i+1], 10, 64)
			if err != nil || n > 1_000_000 {
				return 0, fmt.Errorf("duration %q is out of range", s)
			}
			d += time.Duration(n) * unit
		}
	} else {
		var err error
		d, err = time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("duration %q is neither XdYhZm nor a Go duration", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("duration %q must be positive", s)
	}
	if d > 366*24*time.Hour {
		return 0, fmt.Errorf("duration %q is longer than a year", s)
	}
	return d, nil
}

// FormatDuration writes d as EGS echoes it (D8): <h>h<m>m<s>s, hours unbounded.
func FormatDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Round(time.Second)
	h := int64(d / time.Hour)
	m := int64(d % time.Hour / time.Minute)
	s := int64(d % time.Minute / time.Second)
	return fmt.Sprintf("%dh%dm%ds", h, m, s)
}
