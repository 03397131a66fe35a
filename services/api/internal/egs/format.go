package egs

import (
	"regexp"
	"time"

	"github.com/open-egs/egs/libs/duration"
)

// FormatDuration writes d as <h>h<m>m<s>s with unbounded hours (D8), e.g.
// 0h5m0s or 26h0m0s; see duration.Format.
func FormatDuration(d time.Duration) string { return duration.Format(d) }

// FormatTime writes t as RFC 3339 in UTC, whole seconds, or "" when t is zero.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Truncate(time.Second).Format(time.RFC3339)
}

// MaxNameLen is the longest name (workspace, cluster, namespace, GPR) accepted.
const MaxNameLen = 63

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// ValidName reports whether s is a DNS-style name: lowercase letters, digits
// and '-', not starting or ending with '-', 1..63 characters. Such a name can
// travel in an unencoded query string and is a valid subject token.
func ValidName(s string) bool { return len(s) <= MaxNameLen && dnsLabel.MatchString(s) }
