package egs

import (
	"time"

	"github.com/open-egs/egs/libs/rpc"
)

// Key roles (D15). RoleAdmin is the role of the configured admin token and
// of admin logins; API keys never carry it.
const (
	RoleOwner  = "Owner"
	RoleEditor = "Editor"
	RoleViewer = "Viewer"
	RoleAdmin  = "admin"
)

// ValidityLayout is the layout of an API key's validity, its last valid day.
const ValidityLayout = "2006-01-02"

// CreateKeyBody is the body of POST /api/v1/api-key (§3.1).
type CreateKeyBody struct {
	Name          *string `json:"name"`
	UserName      *string `json:"userName"`
	Description   *string `json:"description"`
	Role          *string `json:"role"`
	Validity      *string `json:"validity"`
	WorkspaceName *string `json:"workspaceName"`
}

// Request checks a create request at now and converts it: the role is
// Owner, Editor or Viewer; Editor and Viewer name a workspace (an Owner key
// is never bound, so its workspaceName is dropped); validity is a
// YYYY-MM-DD day not before today in UTC (D16).
func (b CreateKeyBody) Request(now time.Time) (rpc.CreateKeyRequest, error) {
	name := str(b.Name)
	if name == "" {
		return rpc.CreateKeyRequest{}, invalid("%q is required", "name")
	}
	role := str(b.Role)
	ws := ""
	switch role {
	case RoleOwner:
	case RoleEditor, RoleViewer:
		var err error
		if ws, err = WorkspaceName("workspaceName", str(b.WorkspaceName)); err != nil {
			return rpc.CreateKeyRequest{}, invalid("%q is required for role %s and must be a DNS-style name", "workspaceName", role)
		}
	default:
		return rpc.CreateKeyRequest{}, invalid("%q must be one of Owner, Editor or Viewer", "role")
	}
	validity := str(b.Validity)
	day, err := time.Parse(ValidityLayout, validity)
	if err != nil {
		return rpc.CreateKeyRequest{}, invalid("%q must be a date as YYYY-MM-DD", "validity")
	}
	today := now.UTC().Truncate(24 * time.Hour)
	if day.Before(today) {
		return rpc.CreateKeyRequest{}, invalid("%q must not be in the past", "validity")
	}
	return rpc.CreateKeyRequest{
		Name:        name,
		UserName:    str(b.UserName),
		Description: str(b.Description),
		Role:        role,
		Validity:    validity,
		Workspace:   ws,
	}, nil
}

// KeyRefBody is the body of DELETE /api/v1/api-key: the secret or the key id (D3).
type KeyRefBody struct {
	APIKey *string `json:"apiKey"`
}

// Key returns the key, which must be present.
func (b KeyRefBody) Key() (string, error) {
	if str(b.APIKey) == "" {
		return "", invalid("%q is required", "apiKey")
	}
	return *b.APIKey, nil
}

// KeyCreated is the data of POST /api/v1/api-key: the secret, shown once,
// and the id that stands in for it in lists.
type KeyCreated struct {
	APIKey string `json:"apiKey"`
	KeyID  string `json:"keyId"`
}

// Key is one item of the key list (D3); apiKey is the key id, never the secret.
type Key struct {
	APIKey        string `json:"apiKey"`
	Name          string `json:"name"`
	Role          string `json:"role"`
	UserName      string `json:"userName"`
	WorkspaceName string `json:"workspaceName"`
	Validity      string `json:"validity"`
	Description   string `json:"description"`
}

// KeyList is the data of GET /api/v1/api-key/list: {data:[...]}.
type KeyList struct {
	Data []Key `json:"data"`
}

// FromKeyList converts a list; data is [] when empty.
func FromKeyList(l rpc.KeyList) KeyList {
	out := KeyList{Data: make([]Key, 0, len(l.Keys))}
	for _, k := range l.Keys {
		out.Data = append(out.Data, Key{
			APIKey: k.KeyID, Name: k.Name, Role: k.Role, UserName: k.UserName,
			WorkspaceName: k.Workspace, Validity: k.Validity, Description: k.Description,
		})
	}
	return out
}

// AuthBody is the body of POST /api/v1/auth (§2.1).
type AuthBody struct {
	APIKey *string `json:"apiKey"`
}

// Token is the data of a successful /auth: exactly {token}.
type Token struct {
	Token string `json:"token"`
}
