package registration_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/open-egs/egs/services/provisioner/internal/registration"
)

func TestSealer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "credentials.key")
	s, err := registration.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v, mode %v: want 0600", err, fi.Mode())
	}
	secret := []byte("token: very-secret")
	sealed := s.Seal("lab", secret)
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed credentials hold the secret")
	}
	again, err := registration.LoadOrCreateKey(path) // the same key, read back
	if err != nil {
		t.Fatal(err)
	}
	if got, err := again.Open("lab", sealed); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := again.Open("other", sealed); err == nil {
		t.Error("credentials sealed for one cluster opened for another")
	}
	other, err := registration.LoadOrCreateKey(filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Open("lab", sealed); err == nil {
		t.Error("credentials opened with another key")
	}
	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := registration.LoadOrCreateKey(path); err == nil {
		t.Error("a malformed key was accepted")
	}
}
