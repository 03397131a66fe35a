package registration

import (
	"strings"
	"testing"
)

// TestBuildAcceptsInlineCredentialsOnly: a registered kubeconfig may not make
// the provisioner run a command or read its own files.
func TestBuildAcceptsInlineCredentialsOnly(t *testing.T) {
	const head = `apiVersion: v1
kind: Config
current-context: c
clusters:
- name: c
  cluster: {server: "https://kube.example:6443", insecure-skip-tls-verify: true}
contexts:
- name: c
  context: {cluster: c, user: u}
users:
- name: u
  user:
`
	for name, tc := range map[string]struct {
		user    string
		wantErr string
	}{
		"inline token":  {"    token: abc\n", ""},
		"exec plugin":   {"    exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh, args: [-c, id]}\n", "exec"},
		"token file":    {"    tokenFile: /etc/passwd\n", "tokenFile"},
		"cert file":     {"    client-certificate: /tmp/c.pem\n    client-key: /tmp/k.pem\n", "files"},
		"auth provider": {"    auth-provider: {name: oidc, config: {idp-issuer-url: https://x}}\n", "auth-provider"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := build("kube-x", []byte(head+tc.user), "")
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("build = %v, want success", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("build = %v, want an error naming %q", err, tc.wantErr)
			}
		})
	}
	for s, want := range map[string]bool{"https://kube.example:6443": true, "https://": false, "https://a b": false, "http://kube.example": false} {
		if got := httpsURL(s); got != want {
			t.Errorf("httpsURL(%q) = %v, want %v", s, got, want)
		}
	}
}
