// Package workspace is the domain of the workspace service: the Workspace
// entity with its invariants, the domain errors, and the use cases (Manager)
// over the ports they need (a store, a cluster registry, an event publisher).
// It imports nothing about NATS.
package workspace

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/open-egs/egs/libs/events"
)

// Domain errors. Adapters translate driver errors into these.
var (
	ErrNotFound = errors.New("workspace not found")
	ErrExists   = errors.New("workspace already exists")

	ErrTemplateNotFound = errors.New("gpr template not found")
	ErrTemplateExists   = errors.New("gpr template already exists")
	ErrTemplateInUse    = errors.New("gpr template is used by a template binding")
	ErrBindingNotFound  = errors.New("template binding not found")
	ErrBindingExists    = errors.New("template binding already exists")
)

// ValidationError says why a request is invalid; its message is safe for clients.
type ValidationError struct{ msg string }

func (e *ValidationError) Error() string { return e.msg }

func invalid(format string, args ...any) error {
	return &ValidationError{msg: fmt.Sprintf(format, args...)}
}

// MaxNameLen is the longest workspace or namespace name (a DNS label).
const MaxNameLen = 63

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidName reports whether s is a DNS label of at most 63 characters, the
// form of workspace and namespace names.
func ValidName(s string) bool { return len(s) <= MaxNameLen && dnsLabel.MatchString(s) }

// Spec is what a caller asks for when creating a workspace.
type Spec struct {
	Name       string
	Clusters   []string
	Namespaces []string
	Username   string
	Email      string
}

// Workspace is a validated workspace. Build one with New (new input) or
// Restore (stored data); the zero value is not a workspace.
type Workspace struct {
	Name       string
	Clusters   []string
	Namespaces []string // never empty: defaults to [Name]
	Username   string
	Email      string
	CreatedAt  time.Time
	Policy     Policy // zero: no limits
}

// New validates spec and returns the workspace created at now. Every error is
// a *ValidationError naming the first problem found. Whether the clusters are
// registered is checked by the Manager, not here.
func New(spec Spec, now time.Time) (Workspace, error) {
	if spec.Name == "" {
		return Workspace{}, invalid("workspaceName is required")
	}
	if !ValidName(spec.Name) {
		return Workspace{}, invalid("workspaceName %q must be a DNS label: lowercase letters, digits and '-', "+
			"starting and ending with a letter or digit, at most %d characters", spec.Name, MaxNameLen)
	}
	if len(spec.Clusters) == 0 {
		return Workspace{}, invalid("clusters must not be empty")
	}
	seen := map[string]bool{}
	for _, c := range spec.Clusters {
		if !events.ValidToken(c) {
			return Workspace{}, invalid("cluster %q is not a valid cluster name", c)
		}
		if seen[c] {
			return Workspace{}, invalid("cluster %q is listed twice", c)
		}
		seen[c] = true
	}
	namespaces := spec.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{spec.Name}
	}
	seen = map[string]bool{}
	for _, ns := range namespaces {
		if !ValidName(ns) {
			return Workspace{}, invalid("namespace %q must be a DNS label: lowercase letters, digits and '-', "+
				"starting and ending with a letter or digit, at most %d characters", ns, MaxNameLen)
		}
		if seen[ns] {
			return Workspace{}, invalid("namespace %q is listed twice", ns)
		}
		seen[ns] = true
	}
	if strings.TrimSpace(spec.Username) == "" {
		return Workspace{}, invalid("username is required")
	}
	if !validEmail(spec.Email) {
		return Workspace{}, invalid("email %q must contain exactly one '@' between a local part and a domain", spec.Email)
	}
	return Workspace{
		Name:       spec.Name,
		Clusters:   append([]string(nil), spec.Clusters...),
		Namespaces: append([]string(nil), namespaces...),
		Username:   spec.Username,
		Email:      spec.Email,
		CreatedAt:  now.UTC(),
	}, nil
}

func validEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && domain != "" && !strings.Contains(domain, "@") &&
		!strings.ContainsAny(s, " \t\r\n")
}

// Restore rebuilds a workspace from stored data without validating it again
// (it was valid when stored; rules may have tightened since).
func Restore(name string, clusters, namespaces []string, username, email string, createdAt time.Time,
	policy Policy) Workspace {
	return Workspace{Name: name, Clusters: clusters, Namespaces: namespaces, Username: username, Email: email,
		CreatedAt: createdAt, Policy: policy}
}
