package signing

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/libs/token"
)

// Keyring is the auth service's set of signing keys: the current key, which
// signs every new token, and the keys it replaced, whose public halves stay
// in the JWKS until every token they signed has expired (Retain after their
// retirement), so a rotation never breaks a token in flight. A retired key
// can also be revoked, which drops it from the JWKS at once. It is safe for
// concurrent use.
type Keyring struct {
	mu      sync.RWMutex
	current *Signer
	retired []Retired
	retain  time.Duration
	now     func() time.Time
	// keyPath holds the current key and retiredPath the retired ones (JSON);
	// both "" for an ephemeral keyring.
	keyPath, retiredPath string
}

// Retired is a key that no longer signs.
type Retired struct {
	Kid       string    `json:"kid"`
	Public    []byte    `json:"public"` // Ed25519 public key
	RetiredAt time.Time `json:"retiredAt"`
}

// NewKeyring returns a keyring around current. keyPath and retiredPath
// persist rotations (both "" keeps them in memory); retain is the longest
// lifetime of a token signed by the keyring.
func NewKeyring(current *Signer, keyPath, retiredPath string, retain time.Duration, now func() time.Time) (*Keyring, error) {
	if now == nil {
		now = time.Now
	}
	k := &Keyring{current: current, retain: retain, now: now, keyPath: keyPath, retiredPath: retiredPath}
	if retiredPath != "" {
		b, err := os.ReadFile(retiredPath)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("read retired signing keys: %w", err)
		default:
			if err := json.Unmarshal(b, &k.retired); err != nil {
				return nil, fmt.Errorf("decode %s: %w", retiredPath, err)
			}
		}
	}
	return k, nil
}

// Current is the key that signs new tokens.
func (k *Keyring) Current() *Signer {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.current
}

// Issue signs an access token with the current key (see Signer.Issue).
func (k *Keyring) Issue(subject, role, workspace string, now time.Time) (string, time.Time, error) {
	return k.Current().Issue(subject, role, workspace, now)
}

// JWKS is the current key and every retired key still within Retain of its
// retirement.
func (k *Keyring) JWKS() rpc.JWKS {
	k.mu.RLock()
	defer k.mu.RUnlock()
	set := k.current.JWKS()
	now := k.now()
	for _, r := range k.retired {
		if now.Sub(r.RetiredAt) < k.retain && len(r.Public) == ed25519.PublicKeySize {
			set.Keys = append(set.Keys, token.JWK(ed25519.PublicKey(r.Public)))
		}
	}
	return set
}

// Rotate makes a fresh key current and retires the old one; it returns the
// new and the old key ids.
func (k *Keyring) Rotate() (string, string, error) {
	next, err := Generate()
	if err != nil {
		return "", "", err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	old := k.current
	now := k.now().UTC()
	retired := []Retired{{Kid: old.KeyID(), Public: old.Public(), RetiredAt: now}}
	for _, r := range k.retired { // forget keys past their retention
		if now.Sub(r.RetiredAt) < k.retain {
			retired = append(retired, r)
		}
	}
	if err := k.persist(next, retired); err != nil {
		return "", "", err
	}
	k.current, k.retired = next, retired
	return next.KeyID(), old.KeyID(), nil
}

// Revoke drops a retired key from the JWKS at once; the current key cannot
// be revoked (rotate first). It reports whether the key was retired.
func (k *Keyring) Revoke(kid string) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if kid == k.current.KeyID() {
		return false, errors.New("the current signing key cannot be revoked; rotate it first")
	}
	var kept []Retired
	found := false
	for _, r := range k.retired {
		if r.Kid == kid {
			found = true
			continue
		}
		kept = append(kept, r)
	}
	if !found {
		return false, nil
	}
	if err := k.persist(nil, kept); err != nil {
		return false, err
	}
	k.retired = kept
	return true, nil
}

// persist writes the retired keys and, when next is set, the new current key.
func (k *Keyring) persist(next *Signer, retired []Retired) error {
	if k.retiredPath != "" {
		b, err := json.Marshal(retired)
		if err != nil {
			return fmt.Errorf("encode retired signing keys: %w", err)
		}
		if err := WriteFile(k.retiredPath, b); err != nil {
			return err
		}
	}
	if next != nil && k.keyPath != "" {
		pemBytes, err := Encode(next.priv)
		if err != nil {
			return err
		}
		if err := WriteFile(k.keyPath, pemBytes); err != nil {
			return err
		}
	}
	return nil
}

// KeyID is the kid of the signer's key.
func (s *Signer) KeyID() string { return token.KeyID(s.priv.Public().(ed25519.PublicKey)) }

// Public is the signer's public key.
func (s *Signer) Public() ed25519.PublicKey { return s.priv.Public().(ed25519.PublicKey) }

// Private is the signer's private key (for the OAuth2 issuer's ID tokens).
func (s *Signer) Private() ed25519.PrivateKey { return s.priv }
