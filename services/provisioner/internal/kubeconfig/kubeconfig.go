// Package kubeconfig issues a workspace's kubeconfig for one cluster: a token
// of the workspace's ServiceAccount from the TokenRequest API, bounded in
// lifetime, with the cluster's server and CA, and the context on the
// workspace's first namespace.
package kubeconfig

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/open-egs/egs/services/provisioner/internal/clusters"
	"github.com/open-egs/egs/services/provisioner/internal/tenancy"
)

// Issue requests a token for the workspace's ServiceAccount (in namespace,
// the workspace's first) valid for ttl, and returns the kubeconfig YAML:
// one cluster named after c, one user <ws>@<cluster>, the context
// <ws>@<cluster> on namespace. The API server may shorten the lifetime; the
// returned expiry is the one it granted.
func Issue(ctx context.Context, c *clusters.Cluster, ws, namespace string, ttl time.Duration) ([]byte, time.Time, error) {
	if c.Simulated { // the fake clientset signs nothing
		b, err := Render(c, ws, namespace, "simulated-"+ws)
		return b, time.Now().Add(ttl), err
	}
	secs := int64(ttl / time.Second)
	tr, err := c.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, tenancy.ServiceAccountName,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}},
		metav1.CreateOptions{})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("token for %s/%s: %w", namespace, tenancy.ServiceAccountName, err)
	}
	b, err := Render(c, ws, namespace, tr.Status.Token)
	if err != nil {
		return nil, time.Time{}, err
	}
	return b, tr.Status.ExpirationTimestamp.Time, nil
}

// Render writes the kubeconfig of ws on cluster c with token.
func Render(c *clusters.Cluster, ws, namespace, token string) ([]byte, error) {
	name := ws + "@" + c.Name
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[c.Name] = &clientcmdapi.Cluster{Server: server(c), CertificateAuthorityData: c.CAData}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: c.Name, AuthInfo: name, Namespace: namespace}
	cfg.CurrentContext = name
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("encode kubeconfig: %w", err)
	}
	return b, nil
}

func server(c *clusters.Cluster) string {
	if c.Server != "" {
		return c.Server
	}
	return "https://" + c.Name + ".simulated.egs.invalid"
}
