package workspace

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// MaxDuration is the longest exitDuration or idleTimeOutDuration, and the
// longest maxExitDuration of a policy.
const MaxDuration = 366 * 24 * time.Hour

var dhm = regexp.MustCompile(`^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$`)

// ParseDuration accepts the EGS form XdYhZm (each part optional, at least one
// present: "0d0h5m", "2d", "1h30m") and Go's syntax ("90s", "1h30m") (D8).
// The result is positive and at most MaxDuration.
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
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("duration %q is neither XdYhZm nor a Go duration", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("duration %q must be positive", s)
	}
	if d > MaxDuration {
		return 0, fmt.Errorf("duration %q is longer than 366 days", s)
	}
	return d, nil
}

// FormatDuration writes d as EGS echoes durations (D8): <h>h<m>m<s>s with
// unbounded hours, e.g. 0h5m0s; "" for zero (unset).
func FormatDuration(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	s := int64(d.Round(time.Second) / time.Second)
	return strconv.FormatInt(s/3600, 10) + "h" + strconv.FormatInt(s/60%60, 10) + "m" + strconv.FormatInt(s%60, 10) + "s"
}
