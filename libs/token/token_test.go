package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/open-egs/egs/libs/rpc"
)

func TestSignVerify(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	raw, err := Sign(priv, Claims{Role: "Editor", Workspace: "ws", RegisteredClaims: jwt.RegisteredClaims{
		Issuer: Issuer, Subject: "ak-1", ExpiresAt: jwt.NewNumericDate(now.Add(TTL)), IssuedAt: jwt.NewNumericDate(now)}})
	if err != nil {
		t.Fatal(err)
	}
	var ks KeySet
	if _, err := ks.Verify(raw, now); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("empty key set: got %v, want ErrUnknownKey", err)
	}
	ks.SetJWKS(rpc.JWKS{Keys: []rpc.JWK{JWK(pub)}})
	c, err := ks.Verify(raw, now.Add(time.Minute))
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if c.Role != "Editor" || c.Workspace != "ws" || c.Subject != "ak-1" {
		t.Fatalf("claims = %+v", c)
	}
	if _, err := ks.Verify(raw, now.Add(TTL+time.Second)); err == nil {
		t.Fatal("expired token verified")
	}
	if _, err := ks.Verify(raw[:len(raw)-2]+"xx", now); err == nil {
		t.Fatal("tampered token verified")
	}
}
