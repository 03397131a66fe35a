package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
)

// registerTelemetry adds the GPU telemetry routes (answered by the telemetry
// service over egs.rpc.v1.telemetry.*), /metrics in the Prometheus format
// with dcgm-exporter names, and the standalone simulator's load endpoint.
// Callers bound to a workspace see only its GPUs; admins and Owners see all.
func (s *Server) registerTelemetry(e *echo.Echo, v1 *echo.Group) {
	v1.GET("/telemetry/gpus", s.telemetryGPUs, s.require(Read))
	v1.GET("/telemetry/top", s.telemetryTop, s.require(Read))
	v1.GET("/telemetry/series", s.telemetrySeries, s.require(Read))
	e.GET("/metrics", s.telemetryMetrics, s.require(Read))
	v1.PUT("/sim/nodes/:node/load", s.simLoad, s.require(Write))
}

// telemetryQuery reads the filters every telemetry route shares.
func telemetryQuery(c echo.Context) (events.TelemetryQuery, error) {
	q := events.TelemetryQuery{
		Caller:    events.TelemetryCaller(narrow(callerOf(c.Request().Context()), c.QueryParam("workspace"))),
		Workspace: c.QueryParam("workspace"),
		GPRID:     c.QueryParam("gprId"),
		Cluster:   c.QueryParam("cluster"),
		Node:      c.QueryParam("node"),
		UUID:      c.QueryParam("uuid"),
		Metric:    c.QueryParam("metric"),
		Res:       c.QueryParam("res"),
	}
	if q.Workspace != "" {
		if err := allowWorkspace(callerOf(c.Request().Context()), q.Workspace); err != nil {
			return q, err
		}
	}
	if v := c.QueryParam("n"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return q, rpc.Errorf(rpc.BadRequest, "n must be a positive integer")
		}
		q.N = n
	}
	for name, dst := range map[string]*time.Time{"from": &q.From, "to": &q.To} {
		if v := c.QueryParam(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return q, rpc.Errorf(rpc.BadRequest, "%s must be an RFC 3339 time", name)
			}
			*dst = t
		}
	}
	return q, nil
}

// telemetryGPUs is GET /api/v1/telemetry/gpus: the latest sample of every
// GPU the filters select (workspace, gprId, cluster, node, uuid).
func (s *Server) telemetryGPUs(c echo.Context) error {
	q, err := telemetryQuery(c)
	if err != nil {
		return err
	}
	rep, err := call[events.TelemetryGPUs](c, s, events.RPCTelemetryLatest, q)
	if err != nil {
		return err
	}
	return ok(c, rep)
}

// telemetryTop is GET /api/v1/telemetry/top?metric=power|temperature|utilization&n=10.
func (s *Server) telemetryTop(c echo.Context) error {
	q, err := telemetryQuery(c)
	if err != nil {
		return err
	}
	rep, err := call[events.TelemetryGPUs](c, s, events.RPCTelemetryTop, q)
	if err != nil {
		return err
	}
	return ok(c, rep)
}

// telemetrySeries is GET /api/v1/telemetry/series?res=10s|1m|1h&from=&to=
// plus the filters: rollup windows (avg/max/min), oldest first.
func (s *Server) telemetrySeries(c echo.Context) error {
	q, err := telemetryQuery(c)
	if err != nil {
		return err
	}
	rep, err := call[events.TelemetrySeries](c, s, events.RPCTelemetrySeries, q)
	if err != nil {
		return err
	}
	return ok(c, rep)
}

// telemetryMetrics is GET /metrics: every GPU the caller may see, in the
// Prometheus text format under dcgm-exporter names.
func (s *Server) telemetryMetrics(c echo.Context) error {
	q, err := telemetryQuery(c)
	if err != nil {
		return err
	}
	rep, err := call[events.TelemetryMetrics](c, s, events.RPCTelemetryMetrics, q)
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, "text/plain; version=0.0.4; charset=utf-8", []byte(rep.Text))
}

// simLoad is PUT /api/v1/sim/nodes/{node}/load {"utilization": 0-100} (or
// null to return to the load model). Only the standalone product, which runs
// simulated node agents, answers it; elsewhere it is 503.
func (s *Server) simLoad(c echo.Context) error {
	var b struct {
		Utilization *int `json:"utilization"`
	}
	if err := s.decode(c, &b); err != nil {
		return err
	}
	req := events.SimLoadRequest{Cluster: c.QueryParam("cluster"), Node: c.Param("node"), Utilization: b.Utilization}
	rep, err := call[events.SimLoadReply](c, s, events.RPCNodeAgentSimLoad, req)
	if err != nil {
		return err
	}
	return ok(c, rep)
}
