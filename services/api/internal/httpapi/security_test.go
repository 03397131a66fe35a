package httpapi

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/token"
)

// TestRejectedTokensSayUnauthenticated: every token the edge refuses is a
// 401 with the contract's envelope (status UNAUTHENTICATED, message
// "Unauthenticated") and never a hint of why.
func TestRejectedTokensSayUnauthenticated(t *testing.T) {
	f := newFixture(t, "")
	serveWorkspaceList(f, "ws")
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	good := f.token("k1", "Owner", "", time.Minute)
	parts := strings.Split(good, ".")
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, token.Claims{Role: "Owner", RegisteredClaims: jwt.RegisteredClaims{
		Issuer: token.Issuer, Subject: "k1", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute))}})
	hs.Header["kid"] = token.KeyID(f.priv.Public().(ed25519.PublicKey))
	hsTok, _ := hs.SignedString([]byte(f.priv.Public().(ed25519.PublicKey)))
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	badClaims := base64.RawURLEncoding.EncodeToString([]byte(`{"role":"Owner","sub":"k1","iss":"egs","exp":9999999999}`))
	f.server.auth.DenyUntil(jtiKey("revoked-jti"), time.Now().Add(time.Hour))
	revoked := signToken(t, f.priv, "k9", "Owner", "", time.Minute)
	f.server.auth.Revoke("k9")
	withJTI := func(jti string) string {
		s, err := token.Sign(f.priv, token.Claims{Role: "Owner", RegisteredClaims: jwt.RegisteredClaims{Issuer: token.Issuer,
			Subject: "k2", ID: jti, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute))}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	wrongIss, _ := token.Sign(f.priv, token.Claims{Role: "Owner", RegisteredClaims: jwt.RegisteredClaims{Issuer: "someone",
		Subject: "k1", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute))}})
	noExp, _ := token.Sign(f.priv, token.Claims{Role: "Owner", RegisteredClaims: jwt.RegisteredClaims{Issuer: token.Issuer, Subject: "k1"}})
	cases := map[string]string{
		"expired":           f.token("k1", "Owner", "", -time.Second),
		"wrong signature":   signToken(t, other, "k1", "Owner", "", time.Minute),
		"tampered payload":  parts[0] + "." + badClaims + "." + parts[2],
		"truncated":         good[:len(good)-5],
		"alg none":          none,
		"HS256 with pubkey": hsTok,
		"malformed":         "a.b.c",
		"two parts":         parts[0] + "." + parts[1],
		"revoked subject":   revoked,
		"revoked jti":       withJTI("revoked-jti"),
		"wrong issuer":      wrongIss,
		"no expiry":         noExp,
		"empty":             "",
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			r := f.do(http.MethodGet, "/api/v1/slice-workspace/list", tok, "")
			if r.status != 401 || r.env["status"] != "UNAUTHENTICATED" || r.env["message"] != "Unauthenticated" {
				t.Errorf("%d %s", r.status, r.body)
			}
		})
	}
	if r := f.do(http.MethodGet, "/api/v1/slice-workspace/list", withJTI("fine-jti"), ""); r.status != 200 {
		t.Errorf("a good token with another jti: %d", r.status)
	}
}

// FuzzAuthenticate feeds arbitrary bearer values to the authenticator: it
// never panics, and whatever it accepts is a token signed by the key set
// with a known role.
func FuzzAuthenticate(f *testing.F) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	a := NewAuthenticator(func(context.Context) (rpc.JWKS, error) {
		return rpc.JWKS{Keys: []rpc.JWK{token.JWK(priv.Public().(ed25519.PublicKey))}}, nil
	}, "admin-secret-token", time.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := a.Refresh(context.Background()); err != nil {
		f.Fatal(err)
	}
	good, err := token.Sign(priv, token.Claims{Role: "Editor", Workspace: "ws", RegisteredClaims: jwt.RegisteredClaims{
		Issuer: token.Issuer, Subject: "k1", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{good, "", "admin-secret-token", "a.b.c", good + "x", strings.Replace(good, ".", "..", 1),
		"eyJhbGciOiJub25lIn0.e30.", "Bearer " + good} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := a.Authenticate(context.Background(), bearer("Bearer "+raw))
		if err != nil {
			if rpc.CodeOf(err) != rpc.Unauthenticated {
				t.Fatalf("error %v is not UNAUTHENTICATED", err)
			}
			return
		}
		if raw == "admin-secret-token" {
			return
		}
		var ks token.KeySet
		ks.SetJWKS(rpc.JWKS{Keys: []rpc.JWK{token.JWK(priv.Public().(ed25519.PublicKey))}})
		claims, verr := ks.Verify(strings.TrimSpace(raw), time.Now())
		if verr != nil || claims.Subject != c.Subject {
			t.Fatalf("accepted %q as %+v, but it does not verify: %v", raw, c, verr)
		}
		if c.Role == "" && !strings.HasPrefix(c.Subject, rpc.UserSubjectPrefix) {
			t.Fatalf("accepted %q with no role", raw)
		}
	})
}

// FuzzAuthBodies decodes arbitrary bodies as the auth routes do (session
// login, admin user, OAuth2 client): never a panic, and a body that decodes
// gives a request whose strings came from the body.
func FuzzAuthBodies(f *testing.F) {
	for _, s := range []string{`{"token":"egsu_x"}`, `{"username":"a","workspaces":[{"name":"ws","role":"Editor"}]}`,
		`{"name":"c","redirectUris":["https://x/cb"],"public":true}`, `{`, `[]`, `{"admin":"yes"}`, `{"workspaces":{}}`, `null`,
		`{"token":null}`, `{"validity":"2026-01-01","ttl":"15m"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var login struct {
			Token *string `json:"token"`
		}
		_ = decodeBody(body, &login)
		var u UserBody
		if err := decodeBody(body, &u); err == nil {
			spec := u.spec("actor", "name")
			if spec.Workspaces == nil || spec.Username != "name" {
				t.Fatalf("spec %+v", spec)
			}
			if _, err := json.Marshal(spec); err != nil {
				t.Fatal(err)
			}
		}
		var cb ClientBody
		_ = decodeBody(body, &cb)
	})
}
