// Package apikey is the domain of API keys: roles, the Key entity and its
// invariants, how a secret is generated, hashed and matched, validity days,
// the domain errors, and the use cases (Manager) over the ports they need. It
// imports nothing about NATS.
//
// A secret is a random UUID v4 (122 random bits). Only its SHA-256 is stored:
// a secret that random needs no slow hash. The key id is "ak-" plus the first
// 20 hex characters of that hash, so a secret is looked up with one read and
// checked with a constant-time compare of the whole hash.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Domain errors. Adapters translate driver errors into these.
var (
	ErrNotFound          = errors.New("api key not found")
	ErrNameTaken         = errors.New("api key name already taken")
	ErrExists            = errors.New("api key already exists")
	ErrChanged           = errors.New("api key changed since it was read")
	ErrWorkspaceNotFound = errors.New("workspace not found")
	ErrNoKey             = errors.New("no api key given")
	ErrUnauthenticated   = errors.New("unknown api key")
	ErrExpired           = errors.New("api key has expired")
)

// ValidationError says why a request is invalid; its message is safe for clients.
type ValidationError struct{ msg string }

func (e *ValidationError) Error() string { return e.msg }

func invalid(format string, args ...any) error {
	return &ValidationError{msg: fmt.Sprintf(format, args...)}
}

// Role is what a key may do (egs-api-v1.md D15).
type Role string

// The roles.
const (
	Owner  Role = "Owner"
	Editor Role = "Editor"
	Viewer Role = "Viewer"
)

// ParseRole returns the role called s (exact case), or false.
func ParseRole(s string) (Role, bool) {
	switch r := Role(s); r {
	case Owner, Editor, Viewer:
		return r, true
	}
	return "", false
}

// BoundToWorkspace reports whether keys of the role act in one workspace only.
func (r Role) BoundToWorkspace() bool { return r == Editor || r == Viewer }

// DateLayout is the layout of a validity day.
const DateLayout = "2006-01-02"

// MaxNameLen is the longest key name.
const MaxNameLen = 128

// IDPrefix starts every key id.
const IDPrefix = "ak-"

// NewSecret returns a random UUID v4 string, the form of EGS API keys.
func NewSecret() string {
	var b [16]byte
	_, _ = rand.Read(b[:])  // crypto/rand.Read never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Hash is the hex SHA-256 of secret, the only form in which it is stored.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// IDOf is the key id of the key whose secret hashes to hash.
func IDOf(hash string) string { return IDPrefix + hash[:20] }

// Spec is what a caller asks for when creating a key.
type Spec struct {
	Name        string
	UserName    string
	Description string
	Role        string
	Validity    string // last valid day, YYYY-MM-DD (UTC)
	Workspace   string
}

// Key is a stored API key: never its secret, only the secret's hash. Build one
// with New (new input) or Restore (stored data).
type Key struct {
	ID          string
	Hash        string
	Name        string
	Role        Role
	UserName    string
	Description string
	Workspace   string // "" for Owner keys
	Validity    string // last valid day, YYYY-MM-DD (UTC)
	CreatedAt   time.Time
}

// New validates spec and returns the key for secret, created at now. Errors
// are *ValidationError. Whether the workspace exists is checked by the Manager.
// An Owner key carries no workspace, whatever spec says.
func New(spec Spec, secret string, now time.Time) (Key, error) {
	name := strings.TrimSpace(spec.Name)
	if name == "" {
		return Key{}, invalid("name is required")
	}
	if len(name) > MaxNameLen {
		return Key{}, invalid("name must be at most %d characters", MaxNameLen)
	}
	role, ok := ParseRole(spec.Role)
	if !ok {
		return Key{}, invalid("role %q must be one of Owner, Editor, Viewer", spec.Role)
	}
	ws := spec.Workspace
	if role.BoundToWorkspace() && ws == "" {
		return Key{}, invalid("workspaceName is required for role %s", role)
	}
	if !role.BoundToWorkspace() {
		ws = ""
	}
	day, err := time.Parse(DateLayout, spec.Validity)
	if err != nil {
		return Key{}, invalid("validity %q must be a date YYYY-MM-DD", spec.Validity)
	}
	if day.Before(today(now)) {
		return Key{}, invalid("validity %s is in the past", spec.Validity)
	}
	if secret == "" {
		return Key{}, errors.New("new api key: empty secret") // programmer error, not the caller's
	}
	hash := Hash(secret)
	return Key{
		ID:          IDOf(hash),
		Hash:        hash,
		Name:        name,
		Role:        role,
		UserName:    spec.UserName,
		Description: spec.Description,
		Workspace:   ws,
		Validity:    day.Format(DateLayout),
		CreatedAt:   now.UTC(),
	}, nil
}

// Restore rebuilds a key from stored data without validating it again.
func Restore(id, hash, name string, role Role, userName, description, workspace, validity string,
	createdAt time.Time) Key {
	return Key{ID: id, Hash: hash, Name: name, Role: role, UserName: userName, Description: description,
		Workspace: workspace, Validity: validity, CreatedAt: createdAt}
}

func today(now time.Time) time.Time {
	y, m, d := now.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Expired reports whether the key is past its validity at now: a key is valid
// until the end of its validity day in UTC (D16). A validity that does not
// parse counts as expired.
func (k Key) Expired(now time.Time) bool {
	day, err := time.Parse(DateLayout, k.Validity)
	if err != nil {
		return true
	}
	return !now.UTC().Before(day.AddDate(0, 0, 1))
}

// Matches reports whether secret is this key's secret, in constant time.
func (k Key) Matches(secret string) bool {
	return subtle.ConstantTimeCompare([]byte(Hash(secret)), []byte(k.Hash)) == 1
}
