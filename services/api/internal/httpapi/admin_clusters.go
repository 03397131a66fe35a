package httpapi

import (
	"regexp"

	"github.com/labstack/echo/v4"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
)

// registerAdminClusters adds the admin routes of cluster registration (access
// Global); the provisioner stores the kubeconfig encrypted and serves a new
// cluster without a restart (docs/kubernetes.md).
func (s *Server) registerAdminClusters(v1 *echo.Group) {
	g := v1.Group("/admin/clusters", s.require(Global))
	g.GET("", s.adminListClusters)
	g.POST("", s.adminRegisterCluster)
	g.DELETE("/:name", s.adminUnregisterCluster)
}

// ClusterBody is the body of POST /api/v1/admin/clusters: a whole
// kubeconfig (its current context is used) and, optionally, the API server
// URL written into users' kubeconfigs instead of the kubeconfig's own.
type ClusterBody struct {
	Name       *string `json:"name"`
	KubeConfig *string `json:"kubeConfig"`
	Server     *string `json:"server"`
}

// dnsLabel is an RFC 1123 label, what the provisioner requires of a cluster name.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// maxKubeConfigLen bounds a registered kubeconfig (certificates included).
const maxKubeConfigLen = 256 << 10

func (s *Server) adminRegisterCluster(c echo.Context) error {
	var b ClusterBody
	if err := s.decode(c, &b); err != nil {
		return err
	}
	name, kc := egsStr(b.Name), egsStr(b.KubeConfig)
	if !dnsLabel.MatchString(name) || len(name) > 63 {
		return rpc.Errorf(rpc.Invalid, `"name" must be a DNS label: 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit`)
	}
	if kc == "" || len(kc) > maxKubeConfigLen {
		return rpc.Errorf(rpc.Invalid, `"kubeConfig" must be a kubeconfig of at most %d bytes`, maxKubeConfigLen)
	}
	cl, err := call[events.Cluster](c, s, events.RPCClusterRegister, rpc.ClusterRegisterRequest{
		Caller: callerOf(c.Request().Context()), Name: name, KubeConfig: kc, Server: egsStr(b.Server)})
	if err != nil {
		return err
	}
	return created(c, cl)
}

func (s *Server) adminListClusters(c echo.Context) error {
	l, err := call[rpc.ClusterList](c, s, events.RPCClusterList, rpc.ClusterListRequest{Caller: callerOf(c.Request().Context())})
	if err != nil {
		return err
	}
	return ok(c, l.Clusters)
}

func (s *Server) adminUnregisterCluster(c echo.Context) error {
	name := c.Param("name")
	if !events.ValidToken(name) {
		return rpc.Errorf(rpc.Invalid, "invalid cluster name %q", name)
	}
	cl, err := call[events.Cluster](c, s, events.RPCClusterUnregister, rpc.ClusterRef{Caller: callerOf(c.Request().Context()), Name: name})
	if err != nil {
		return err
	}
	return ok(c, cl)
}
