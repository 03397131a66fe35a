// Package signing holds the auth service's Ed25519 signing key: loading it
// from a PEM (PKCS#8) file, creating that file once, or generating an
// ephemeral key; and issuing access tokens with it.
package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/token"
)

// Signer signs access tokens. It is safe for concurrent use.
type Signer struct {
	priv ed25519.PrivateKey
}

// New returns a Signer with priv.
func New(priv ed25519.PrivateKey) *Signer { return &Signer{priv: priv} }

// Generate returns a Signer with a fresh key.
func Generate() (*Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	return New(priv), nil
}

// LoadFile reads an Ed25519 private key from a PEM "PRIVATE KEY" (PKCS#8) file.
func LoadFile(path string) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	priv, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return New(priv), nil
}

// Parse decodes an Ed25519 private key from PEM PKCS#8.
func Parse(pemBytes []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("no PEM PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse PKCS#8: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is a %T, want Ed25519", k)
	}
	return priv, nil
}

// Encode returns priv as PEM PKCS#8.
func Encode(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode signing key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// LoadOrCreate loads the key at path, or creates it (mode 0600) with a fresh
// key if there is none, and reports whether it created it. Creation never
// replaces a file: of two processes creating it at once, both end up with the
// one that was linked first.
func LoadOrCreate(path string) (*Signer, bool, error) {
	s, err := LoadFile(path)
	if err == nil {
		return s, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	s, err = Generate()
	if err != nil {
		return nil, false, err
	}
	pemBytes, err := Encode(s.priv)
	if err != nil {
		return nil, false, err
	}
	if err := CreateFile(path, pemBytes); err != nil {
		if errors.Is(err, fs.ErrExist) {
			s, err := LoadFile(path)
			return s, false, err
		}
		return nil, false, err
	}
	return s, true, nil
}

// CreateFile writes data to path with mode 0600, atomically, failing with
// fs.ErrExist if path exists.
func CreateFile(path string, data []byte) error {
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return nil
}

// WriteFile writes data to path with mode 0600, atomically, replacing it.
func WriteFile(path string, data []byte) error {
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func writeTemp(path string, data []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	name := f.Name()
	if err := f.Chmod(0o600); err == nil {
		_, err = f.Write(data)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			return name, nil
		}
	} else {
		_ = f.Close()
	}
	_ = os.Remove(name)
	return "", fmt.Errorf("write %s: %w", path, err)
}

// Issue returns an access token for subject with role, bound to workspace
// when it is not "" (Editor and Viewer), issued at now, and its expiry.
func (s *Signer) Issue(subject, role, workspace string, now time.Time) (string, time.Time, error) {
	now = now.UTC().Truncate(time.Second)
	exp := now.Add(token.TTL)
	raw, err := token.Sign(s.priv, token.Claims{
		Role:      role,
		Workspace: workspace,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    token.Issuer,
			Subject:   subject,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        bus.NewID(),
		},
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return raw, exp, nil
}

// JWKS returns the public key set that verifies the tokens of s.
func (s *Signer) JWKS() rpc.JWKS {
	return rpc.JWKS{Keys: []rpc.JWK{token.JWK(s.priv.Public().(ed25519.PublicKey))}}
}
