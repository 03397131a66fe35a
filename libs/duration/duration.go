// Package duration reads and writes the durations of the EGS contract
// (decision D8): exitDuration, idleTimeOutDuration and estimatedWaitTime. Every
// service that takes or shows one uses it, so all agree on the rules.
package duration

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Max is the longest duration accepted: a year (366 days).
const Max = 366 * 24 * time.Hour

var dhm = regexp.MustCompile(`^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$`)

// Parse accepts the EGS form XdYhZm (each part optional, at least one
// present, e.g. "0d0h5m", "2d", "1h30m") and Go's syntax ("1h30m", "90s").
// The result is positive and at most Max.
func Parse(s string) (time.Duration, error) {
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
	if d > Max {
		return 0, fmt.Errorf("duration %q is longer than a year", s)
	}
	return d, nil
}

// Format writes d as EGS echoes it: <h>h<m>m<s>s, hours unbounded, rounded to
// the second (0h5m0s, 26h0m0s); a negative duration reads as zero.
func Format(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d.Round(time.Second) / time.Second)
	return strconv.FormatInt(s/3600, 10) + "h" + strconv.FormatInt(s/60%60, 10) + "m" + strconv.FormatInt(s%60, 10) + "s"
}
