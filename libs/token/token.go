// Package token signs and verifies the access tokens of the platform: JWTs
// signed with Ed25519 (alg EdDSA) by the auth service and verified locally by
// every edge replica against the auth service's JWKS, so a request needs no
// round trip to auth.
package token

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/open-egs/egs/libs/rpc"
)

// Issuer is the iss claim of every access token.
const Issuer = "egs"

// TTL is the lifetime of a token exchanged for an API key (EGS: 900 s).
const TTL = 900 * time.Second

// Claims are the claims of an access token.
type Claims struct {
	Role      string `json:"role"`         // Owner, Editor, Viewer or admin
	Workspace string `json:"ws,omitempty"` // bound workspace for Editor and Viewer
	jwt.RegisteredClaims
}

// KeyID derives the kid of a public key: 16 hex characters of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Sign returns the compact JWT of claims signed with priv.
func Sign(priv ed25519.PrivateKey, c Claims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = KeyID(priv.Public().(ed25519.PublicKey))
	s, err := t.SignedString(priv)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// JWK returns the public JWK of priv.
func JWK(pub ed25519.PublicKey) rpc.JWK {
	return rpc.JWK{Kty: "OKP", Crv: "Ed25519", Kid: KeyID(pub), Alg: "EdDSA", Use: "sig",
		X: base64.RawURLEncoding.EncodeToString(pub)}
}

// ErrUnknownKey is returned by Verify when the token's kid is not in the key set.
var ErrUnknownKey = errors.New("token signed by an unknown key")

// KeySet is a set of verification keys by kid. It is safe for concurrent use.
type KeySet struct {
	mu   sync.RWMutex
	keys map[string]ed25519.PublicKey
}

// SetJWKS replaces the keys with those of set (non-Ed25519 entries are skipped).
func (k *KeySet) SetJWKS(set rpc.JWKS) {
	keys := make(map[string]ed25519.PublicKey, len(set.Keys))
	for _, j := range set.Keys {
		if j.Kty != "OKP" || j.Crv != "Ed25519" {
			continue
		}
		x, err := base64.RawURLEncoding.DecodeString(j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			continue
		}
		keys[j.Kid] = ed25519.PublicKey(x)
	}
	k.mu.Lock()
	k.keys = keys
	k.mu.Unlock()
}

// Verify checks signature, issuer and expiry of raw at now and returns its claims.
// A token whose kid is unknown fails with ErrUnknownKey (refresh the set and retry).
func (k *KeySet) Verify(raw string, now time.Time) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k.mu.RLock()
		pub, ok := k.keys[kid]
		k.mu.RUnlock()
		if !ok {
			return nil, ErrUnknownKey
		}
		return pub, nil
	}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithIssuer(Issuer), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }))
	if err != nil {
		if errors.Is(err, ErrUnknownKey) {
			return nil, ErrUnknownKey
		}
		return nil, fmt.Errorf("verify token: %w", err)
	}
	return &c, nil
}
