package events

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Buckets of the auth service besides BucketAPIKeys (owner: auth).
const (
	// BucketUsers holds users ("u.<userId>") and their access tokens
	// ("t.<tokenId>"), the tokens only as SHA-256 hashes.
	BucketUsers = "EGS_USERS"
	// BucketLoginCodes holds direct login codes ("c.<SHA-256 of the code>"),
	// each redeemed exactly once by a revision-checked delete; its entries
	// expire after the longest code lifetime.
	BucketLoginCodes = "EGS_LOGIN_CODES"
	// BucketOAuthClients holds the OAuth2 clients registered by admins
	// ("<clientId>"), their secrets only as SHA-256 hashes.
	BucketOAuthClients = "EGS_OAUTH_CLIENTS"
)

// Auth event families, the fourth token of egs.auth.v1.<family>.<id>.<event>.
const (
	AuthFamilyUser        = "user"
	AuthFamilyAccessToken = "usertoken"
	AuthFamilySession     = "session"
	AuthFamilyLogin       = "login"
	AuthFamilyDirectLogin = "directlogin"
	AuthFamilyClient      = "client"
	AuthFamilyOAuth       = "oauth"
	AuthFamilySigningKey  = "signingkey"
)

// Auth event names (the last token).
const (
	AuthCreated   = "created"
	AuthUpdated   = "updated"
	AuthDeleted   = "deleted"
	AuthRevoked   = "revoked"
	AuthSucceeded = "succeeded"
	AuthFailed    = "failed"
	AuthLoggedOut = "logged-out"
	AuthIssued    = "issued"
	AuthRotated   = "rotated"
	AuthReused    = "reused"
)

// Subjects the edges subscribe to (core NATS, every replica) to revoke
// credentials within a second of their revocation.
const (
	SubjectUserChanged        = "egs.auth.v1.user.*.*" // updated, deleted: users' sessions and tokens
	SubjectAccessTokenRevoked = "egs.auth.v1.usertoken.*.revoked"
	SubjectOAuthRevoked       = "egs.auth.v1.oauth.*.revoked" // a revoked OAuth2 access token (id = jti)
	SubjectClientDeleted      = "egs.auth.v1.client.*.deleted"
	SubjectSigningKeyAll      = "egs.auth.v1.signingkey.*.*"
)

// AuthSubject is egs.auth.v1.<family>.<id>.<event>.
func AuthSubject(family, id, ev string) (string, error) {
	return build("egs.auth.v1", family, id, ev)
}

// UserID is the subject token and KV key part of a user: "u-" plus 20 hex
// characters of the SHA-256 of the username (usernames may hold dots and @,
// which subjects and keys cannot).
func UserID(username string) string {
	sum := sha256.Sum256([]byte(username))
	return "u-" + hex.EncodeToString(sum[:10])
}

// Request/reply subjects of users, access tokens, logins and OAuth2 clients
// (auth service).
const (
	RPCAuthUserCreate   = "egs.rpc.v1.auth.user-create"
	RPCAuthUserGet      = "egs.rpc.v1.auth.user-get"
	RPCAuthUserList     = "egs.rpc.v1.auth.user-list"
	RPCAuthUserUpdate   = "egs.rpc.v1.auth.user-update"
	RPCAuthUserDelete   = "egs.rpc.v1.auth.user-delete"
	RPCAuthTokenCreate  = "egs.rpc.v1.auth.usertoken-create"
	RPCAuthTokenList    = "egs.rpc.v1.auth.usertoken-list"
	RPCAuthTokenRevoke  = "egs.rpc.v1.auth.usertoken-revoke"
	RPCAuthDirectCreate = "egs.rpc.v1.auth.direct-login-create"
	RPCAuthLogin        = "egs.rpc.v1.auth.login"
	RPCAuthProviders    = "egs.rpc.v1.auth.idp-providers"
	RPCAuthIdPStart     = "egs.rpc.v1.auth.idp-start"
	RPCAuthIdPFinish    = "egs.rpc.v1.auth.idp-finish"
	RPCAuthClientCreate = "egs.rpc.v1.auth.client-create"
	RPCAuthClientList   = "egs.rpc.v1.auth.client-list"
	RPCAuthClientDelete = "egs.rpc.v1.auth.client-delete"
	RPCAuthKeyRotate    = "egs.rpc.v1.auth.signingkey-rotate"
	RPCAuthKeyRevoke    = "egs.rpc.v1.auth.signingkey-revoke"
)

// AuthAudit is the payload of every egs.auth.v1.* event other than API key
// events: who did what to which credential, never a secret, a hash or a
// session id (sessions are named by an opaque handle, the first 16 hex
// characters of the SHA-256 of their id).
type AuthAudit struct {
	Action string    `json:"action"`           // family.event, e.g. "session.created"
	Actor  string    `json:"actor,omitempty"`  // caller subject that did it ("" for the user themself)
	User   string    `json:"user,omitempty"`   // username concerned
	Method string    `json:"method,omitempty"` // login method: access-token, api-token, direct, idp:<p>
	Target string    `json:"target,omitempty"` // key id, token id, client id, session handle, kid
	Reason string    `json:"reason,omitempty"` // why it failed or was revoked
	Remote string    `json:"remote,omitempty"` // client address as the edge saw it
	Until  time.Time `json:"until,omitzero"`   // revocations: when the revoked credential would have expired
	Detail string    `json:"detail,omitempty"` // anything else, never secret
	At     time.Time `json:"at"`
}
