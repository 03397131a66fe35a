package signing_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/open-egs/egs/libs/token"
	"github.com/open-egs/egs/services/auth/internal/signing"
)

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key.pem")
	s1, created, err := signing.LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreate = created %v, err %v; want created", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("key file mode = %o, want 600", mode)
	}
	s2, created, err := signing.LoadOrCreate(path)
	if err != nil || created {
		t.Fatalf("second LoadOrCreate = created %v, err %v; want loaded", created, err)
	}
	if s1.JWKS().Keys[0] != s2.JWKS().Keys[0] {
		t.Errorf("reloaded key differs: %v vs %v", s1.JWKS(), s2.JWKS())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the key (no temporary files)", len(entries))
	}
}

func TestLoadFileRejects(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		content string
		want    string
	}{
		"not PEM":      {content: "hello", want: "no PEM"},
		"ECDSA key":    {content: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), want: "want Ed25519"},
		"wrong type":   {content: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), want: "no PEM"},
		"corrupt body": {content: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}})), want: "PKCS#8"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k.pem")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := signing.LoadFile(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadFile() error = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestIssueVerifies(t *testing.T) {
	s, err := signing.Generate()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	raw, exp, err := s.Issue("ak-123", "Editor", "team-a", at)
	if err != nil {
		t.Fatal(err)
	}
	if want := at.Add(token.TTL); !exp.Equal(want) {
		t.Errorf("exp = %v, want %v", exp, want)
	}
	var ks token.KeySet
	ks.SetJWKS(s.JWKS())
	c, err := ks.Verify(raw, at.Add(time.Minute))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if c.Subject != "ak-123" || c.Role != "Editor" || c.Workspace != "team-a" || c.Issuer != token.Issuer || c.ID == "" {
		t.Errorf("claims = %+v", c)
	}
	if _, err := ks.Verify(raw, exp.Add(time.Second)); err == nil {
		t.Error("Verify accepted an expired token")
	}
	other, _ := signing.Generate()
	var ks2 token.KeySet
	ks2.SetJWKS(other.JWKS())
	if _, err := ks2.Verify(raw, at); err == nil {
		t.Error("Verify accepted a token signed by another key")
	}
}
