// Package users is the domain of portal users: the User entity and its
// invariants (username, email, admin flag, workspaces with roles), the user
// access tokens that admins issue (opaque, 256 random bits, stored only as
// their SHA-256, with an expiry, revocable), the direct login codes (single
// use, short-lived, bound to one user) and the use cases over the ports they
// need (Manager). It imports nothing about NATS.
package users

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
)

// Domain errors. Adapters translate driver errors into these.
var (
	ErrNotFound          = errors.New("user not found")
	ErrExists            = errors.New("user already exists")
	ErrChanged           = errors.New("record changed since it was read")
	ErrWorkspaceNotFound = errors.New("workspace not found")
	ErrTokenNotFound     = errors.New("access token not found")
	ErrTokenInvalid      = errors.New("invalid access token")
	ErrTokenExpired      = errors.New("access token expired")
	ErrTokenRevoked      = errors.New("access token revoked")
	ErrCodeInvalid       = errors.New("login link is invalid or was already used")
	ErrCodeExpired       = errors.New("login link expired")
)

// ValidationError says why a request is invalid; its message is safe for clients.
type ValidationError struct{ msg string }

func (e *ValidationError) Error() string { return e.msg }

func invalid(format string, args ...any) error {
	return &ValidationError{msg: fmt.Sprintf(format, args...)}
}

// Limits and defaults.
const (
	MaxUsernameLen     = 64
	MaxEmailLen        = 254
	MaxWorkspaces      = 256
	DefaultTokenTTL    = 30 * 24 * time.Hour
	MaxTokenTTL        = 366 * 24 * time.Hour
	DefaultDirectTTL   = 15 * time.Minute
	MaxDirectTTL       = 24 * time.Hour
	TokenPrefix        = "egsu_"
	TokenIDPrefix      = "ut-"
	DateLayout         = "2006-01-02"
	SourceAdmin        = "admin"
	secretBytes        = 32 // 256 random bits
	tokenIDHexChars    = 20
	maxTokenSecretSize = 128
)

// The workspace roles of users.
const (
	RoleOwner  = "Owner"
	RoleEditor = "Editor"
	RoleViewer = "Viewer"
)

// ValidUsername reports whether s is a username: 1-64 characters of
// lower-case letters, digits, '.', '_', '@' and '-', starting with a letter
// or digit.
func ValidUsername(s string) bool {
	if s == "" || len(s) > MaxUsernameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune("._@-", rune(c))) {
			return false
		}
	}
	return true
}

func validEmail(s string) bool {
	if len(s) > MaxEmailLen || strings.ContainsAny(s, " \t\r\n<>,;\"") {
		return false
	}
	at := strings.IndexByte(s, '@')
	return at > 0 && at == strings.LastIndexByte(s, '@') && at < len(s)-1
}

// Normalize validates spec and returns the user it describes (without
// times). Errors are *ValidationError.
func Normalize(spec rpc.UserSpec) (rpc.User, error) {
	u := rpc.User{Username: strings.TrimSpace(spec.Username), Email: strings.TrimSpace(spec.Email), Admin: spec.Admin}
	if !ValidUsername(u.Username) {
		return rpc.User{}, invalid("username %q must be 1-%d characters: lower-case letters, digits, '.', '_', '@', '-'",
			spec.Username, MaxUsernameLen)
	}
	if u.Email != "" && !validEmail(u.Email) {
		return rpc.User{}, invalid("email %q is not an e-mail address", spec.Email)
	}
	ws, err := normalizeWorkspaces(spec.Workspaces)
	if err != nil {
		return rpc.User{}, err
	}
	u.Workspaces = ws
	return u, nil
}

func normalizeWorkspaces(in []rpc.WorkspaceRole) ([]rpc.WorkspaceRole, error) {
	if len(in) > MaxWorkspaces {
		return nil, invalid("at most %d workspaces", MaxWorkspaces)
	}
	out := make([]rpc.WorkspaceRole, 0, len(in))
	for _, w := range in {
		if !events.ValidToken(w.Name) {
			return nil, invalid("workspace name %q is not valid", w.Name)
		}
		switch w.Role {
		case RoleOwner, RoleEditor, RoleViewer:
		default:
			return nil, invalid("role %q of workspace %s must be one of Owner, Editor, Viewer", w.Role, w.Name)
		}
		if slices.ContainsFunc(out, func(o rpc.WorkspaceRole) bool { return o.Name == w.Name }) {
			return nil, invalid("workspace %s is listed twice", w.Name)
		}
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b rpc.WorkspaceRole) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// NewSecret returns a fresh secret: prefix plus 256 random bits, base64url.
func NewSecret(prefix string) string {
	var b [secretBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// Hash is the hex SHA-256 of secret, the only form in which secrets are
// stored: 256 random bits need no slow hash.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// TokenIDOf is the id of the access token whose secret hashes to hash.
func TokenIDOf(hash string) string { return TokenIDPrefix + hash[:tokenIDHexChars] }

// IsAccessToken reports whether secret has the form of a user access token.
func IsAccessToken(secret string) bool {
	return strings.HasPrefix(secret, TokenPrefix) && len(secret) <= maxTokenSecretSize
}

// AccessToken is a stored user access token: never its secret.
type AccessToken struct {
	ID        string
	Hash      string
	Username  string
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time // zero while valid
}

// Matches reports whether secret is this token's, in constant time.
func (t AccessToken) Matches(secret string) bool {
	return subtle.ConstantTimeCompare([]byte(Hash(secret)), []byte(t.Hash)) == 1
}

// Info describes t without its hash.
func (t AccessToken) Info() rpc.AccessTokenInfo {
	return rpc.AccessTokenInfo{ID: t.ID, Username: t.Username, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt,
		Revoked: !t.RevokedAt.IsZero(), RevokedAt: t.RevokedAt}
}

// tokenExpiry reads a validity day (valid through its end, UTC) or applies
// the default; errors are *ValidationError.
func tokenExpiry(validity string, now time.Time) (time.Time, error) {
	if validity == "" {
		return now.Add(DefaultTokenTTL).UTC().Truncate(time.Second), nil
	}
	day, err := time.Parse(DateLayout, validity)
	if err != nil {
		return time.Time{}, invalid("validity %q must be a date YYYY-MM-DD", validity)
	}
	end := day.AddDate(0, 0, 1)
	if !end.After(now) {
		return time.Time{}, invalid("validity %s is in the past", validity)
	}
	if end.Sub(now) > MaxTokenTTL {
		return time.Time{}, invalid("validity %s is more than a year away", validity)
	}
	return end, nil
}

// Code is a stored direct login code: never the code, only its hash (the key).
type Code struct {
	Hash      string
	Username  string
	CreatedAt time.Time
	ExpiresAt time.Time
}
