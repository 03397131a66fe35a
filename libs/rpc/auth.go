package rpc

import "time"

// ---- auth service: users, access tokens, logins ----

// The roles a user holds in a workspace, and the login methods of a session.
const (
	LoginAccessToken = "access-token"
	LoginAPIToken    = "api-token"
	LoginDirect      = "direct"
	LoginIdPPrefix   = "idp:" // followed by the provider id
)

// UserSubjectPrefix starts the Caller.Subject of a user: "user:<username>".
const UserSubjectPrefix = "user:"

// WorkspaceRole is a workspace a user may use and the user's role in it
// (Owner, Editor or Viewer).
type WorkspaceRole struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// User is a portal user as the auth service stores it.
type User struct {
	Username   string          `json:"username"`
	Email      string          `json:"email"`
	Admin      bool            `json:"admin"`
	Workspaces []WorkspaceRole `json:"workspaces"`
	Source     string          `json:"source"` // "admin", or "idp:<provider>" for users an IdP login made
	CreatedAt  time.Time       `json:"createdAt"`
	UpdatedAt  time.Time       `json:"updatedAt"`
}

// UserSpec is the body of RPCAuthUserCreate and RPCAuthUserUpdate (which
// replaces everything but the username). Actor is who asks, for the audit.
type UserSpec struct {
	Actor      string          `json:"actor"`
	Username   string          `json:"username"`
	Email      string          `json:"email"`
	Admin      bool            `json:"admin"`
	Workspaces []WorkspaceRole `json:"workspaces"`
}

// UserRef names one user (RPCAuthUserGet, RPCAuthUserDelete, RPCAuthTokenList).
type UserRef struct {
	Actor    string `json:"actor"`
	Username string `json:"username"`
}

// UserList is the reply of RPCAuthUserList, sorted by username.
type UserList struct {
	Users []User `json:"users"`
}

// CreateAccessTokenRequest is the body of RPCAuthTokenCreate: Validity is
// the last valid day, YYYY-MM-DD (UTC); "" means 30 days from now.
type CreateAccessTokenRequest struct {
	Actor    string `json:"actor"`
	Username string `json:"username"`
	Validity string `json:"validity"`
}

// AccessTokenCreated returns a user access token's secret, once.
type AccessTokenCreated struct {
	ID        string    `json:"id"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// AccessTokenInfo describes a user access token without its secret.
type AccessTokenInfo struct {
	ID        string    `json:"id"`
	Username  string    `json:"username"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	Revoked   bool      `json:"revoked"`
	RevokedAt time.Time `json:"revokedAt,omitzero"`
}

// AccessTokenList is the reply of RPCAuthTokenList, newest first.
type AccessTokenList struct {
	Tokens []AccessTokenInfo `json:"tokens"`
}

// AccessTokenRef names one access token of one user (RPCAuthTokenRevoke).
type AccessTokenRef struct {
	Actor    string `json:"actor"`
	Username string `json:"username"`
	ID       string `json:"id"`
}

// DirectLoginRequest is the body of RPCAuthDirectCreate; TTL 0 means the
// default (15 minutes).
type DirectLoginRequest struct {
	Actor    string        `json:"actor"`
	Username string        `json:"username"`
	TTL      time.Duration `json:"ttl"`
}

// DirectLoginCreated returns a single-use login code, once.
type DirectLoginCreated struct {
	Code      string    `json:"code"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// LoginRequest is the body of RPCAuthLogin: exactly one of Token (a user
// access token or an Owner API key) and Code (a direct login code). Remote
// is the client's address, for the audit.
type LoginRequest struct {
	Token  string `json:"token"`
	Code   string `json:"code"`
	Remote string `json:"remote"`
}

// Login is who a credential stands for, as the auth service verified it.
type Login struct {
	Method string `json:"method"` // LoginAccessToken, LoginAPIToken, LoginDirect, LoginIdPPrefix+id
	// Origin names the credential the session came from (a user access
	// token id, an API key id; "" for direct and IdP logins): revoking it
	// ends the session.
	Origin string `json:"origin"`
	// User is the user; for an API token, a user of that name (the key's
	// user name or name) with no workspaces of its own.
	User User `json:"user"`
	// Caller is set for API tokens: the Owner key's caller.
	Caller *Caller `json:"caller,omitempty"`
	// ExpiresAt is when the credential itself ends (zero: never); a session
	// never outlives it.
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
}

// ---- auth service: OAuth2 clients ----

// OAuthClientSpec is the body of RPCAuthClientCreate.
type OAuthClientSpec struct {
	Actor        string   `json:"actor"`
	Name         string   `json:"name"`
	RedirectURIs []string `json:"redirectUris"`
	GrantTypes   []string `json:"grantTypes"` // client_credentials, authorization_code, refresh_token
	Scopes       []string `json:"scopes"`
	Public       bool     `json:"public"` // no secret: authorization_code with PKCE only (CLIs, SPAs)
	// Role and Workspace are what a client_credentials token may do, as for
	// an API key: Owner, or Editor/Viewer of one workspace.
	Role      string `json:"role"`
	Workspace string `json:"workspace"`
}

// OAuthClient is a registered client, without its secret.
type OAuthClient struct {
	ID           string    `json:"clientId"`
	Name         string    `json:"name"`
	RedirectURIs []string  `json:"redirectUris"`
	GrantTypes   []string  `json:"grantTypes"`
	Scopes       []string  `json:"scopes"`
	Public       bool      `json:"public"`
	Role         string    `json:"role,omitempty"`
	Workspace    string    `json:"workspace,omitempty"`
	CreatedAt    time.Time `json:"createdAt"`
}

// OAuthClientCreated returns a new client and its secret, once ("" for a
// public client).
type OAuthClientCreated struct {
	Client OAuthClient `json:"client"`
	Secret string      `json:"clientSecret,omitempty"`
}

// OAuthClientRef names one client.
type OAuthClientRef struct {
	Actor string `json:"actor"`
	ID    string `json:"clientId"`
}

// OAuthClientList is the reply of RPCAuthClientList, sorted by id.
type OAuthClientList struct {
	Clients []OAuthClient `json:"clients"`
}

// SigningKeyRef names a signing key (RPCAuthKeyRotate answers the new and
// old ones; RPCAuthKeyRevoke revokes a retired one).
type SigningKeyRef struct {
	Actor  string `json:"actor"`
	Kid    string `json:"kid"`
	OldKid string `json:"oldKid,omitempty"`
}

// ---- auth service: upstream IdP logins ----

// Provider is an upstream OpenID provider offered on the login page.
type Provider struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// IdPStartRequest is the body of RPCAuthIdPStart.
type IdPStartRequest struct {
	Provider string `json:"provider"`
}

// IdPStart is where to send the browser, and the binding secret the edge
// keeps in a short-lived cookie so that only this browser can finish.
type IdPStart struct {
	URL     string `json:"url"`
	Binding string `json:"binding"`
}

// IdPFinishRequest is the body of RPCAuthIdPFinish: the callback's state
// and code, and the browser's binding cookie.
type IdPFinishRequest struct {
	State   string `json:"state"`
	Code    string `json:"code"`
	Binding string `json:"binding"`
	Remote  string `json:"remote"`
}
