package workspace

import (
	"slices"
	"strings"
	"time"
)

// Priority bounds of GPRs, and so of a policy's priority range.
const (
	MinPriority = 1
	MaxPriority = 300
)

// Policy is a workspace's admission policy: a GPR beyond it waits for an
// admin's approval (the gpr-scheduler enforces it). Zero values mean "no
// limit"; an empty AllowedShapes allows every shape.
type Policy struct {
	AllowedShapes   []string
	MaxGPUsPerGPR   int // numberOfGPUs x numberOfGPUNodes
	MaxMemoryPerGPU int // GB
	MaxQueuedGPRs   int
	MaxExitDuration time.Duration
	MinPriority     int
	MaxPriority     int
	// AutoEviction: nil means true (the default).
	AutoEviction *bool
	// RequeueOnFailure: the default for GPRs that do not say; nil: no default.
	RequeueOnFailure *bool
}

// Validate returns a *ValidationError naming the first problem of p: a
// negative limit, a priority outside 1..300, a minimum above the maximum, a
// maximum exit duration over 366 days, or a blank or repeated shape.
func (p Policy) Validate() error {
	for _, l := range []struct {
		key string
		v   int
	}{{"maxGpusPerGpr", p.MaxGPUsPerGPR}, {"maxMemoryPerGpu", p.MaxMemoryPerGPU}, {"maxQueuedGprs", p.MaxQueuedGPRs}} {
		if l.v < 0 {
			return invalid("%s must not be negative", l.key)
		}
	}
	if p.MaxExitDuration < 0 {
		return invalid("maxExitDuration must not be negative")
	}
	if p.MaxExitDuration > MaxDuration {
		return invalid("maxExitDuration must be at most 366 days")
	}
	for _, l := range []struct {
		key string
		v   int
	}{{"minPriority", p.MinPriority}, {"maxPriority", p.MaxPriority}} {
		if l.v != 0 && (l.v < MinPriority || l.v > MaxPriority) {
			return invalid("%s must be between %d and %d (0: no limit)", l.key, MinPriority, MaxPriority)
		}
	}
	if p.MinPriority != 0 && p.MaxPriority != 0 && p.MinPriority > p.MaxPriority {
		return invalid("minPriority %d is above maxPriority %d", p.MinPriority, p.MaxPriority)
	}
	seen := map[string]bool{}
	for _, s := range p.AllowedShapes {
		if strings.TrimSpace(s) == "" {
			return invalid("allowedShapes must not hold blank names")
		}
		if seen[s] {
			return invalid("shape %q is listed twice in allowedShapes", s)
		}
		seen[s] = true
	}
	return nil
}

// clone returns p sharing no memory with the caller's.
func (p Policy) clone() Policy {
	p.AllowedShapes = slices.Clone(p.AllowedShapes)
	if p.AllowedShapes == nil {
		p.AllowedShapes = []string{}
	}
	if p.AutoEviction != nil {
		v := *p.AutoEviction
		p.AutoEviction = &v
	}
	if p.RequeueOnFailure != nil {
		v := *p.RequeueOnFailure
		p.RequeueOnFailure = &v
	}
	return p
}
