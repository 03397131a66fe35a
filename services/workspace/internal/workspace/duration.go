package workspace

import (
	"time"

	"github.com/open-egs/egs/libs/duration"
)

// MaxDuration is the longest exitDuration or idleTimeOutDuration, and the
// longest maxExitDuration of a policy.
const MaxDuration = duration.Max

// ParseDuration reads a duration of the contract (D8); see duration.Parse.
func ParseDuration(s string) (time.Duration, error) { return duration.Parse(s) }

// FormatDuration writes d as EGS echoes durations (D8), or "" for zero (unset).
func FormatDuration(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return duration.Format(d)
}
