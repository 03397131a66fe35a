package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

func TestRouterFailuresCarryTheEnvelope(t *testing.T) {
	f := newFixture(t, "")
	f.server.echo.GET("/panic", func(echo.Context) error { panic("secret detail") })
	tests := map[string]struct {
		method, path string
		wantStatus   int
		wantCode     string
	}{
		"unknown path":         {http.MethodGet, "/nope", 404, "NOT_FOUND"},
		"secondary endpoint":   {http.MethodPost, "/api/v1/inference-endpoint", 404, "NOT_FOUND"},
		"template list":        {http.MethodGet, "/api/v1/gpr-template/list", 401, "UNAUTHENTICATED"},
		"binding":              {http.MethodGet, "/api/v1/gpr-template-binding/list", 401, "UNAUTHENTICATED"},
		"D17 policy by name":   {http.MethodGet, "/api/v1/workspace-policies/p1", 404, "NOT_FOUND"},
		"inference":            {http.MethodGet, "/api/v1/inference-endpoint/list?workspace=ws", 404, "NOT_FOUND"},
		"D17 policies":         {http.MethodGet, "/api/v1/workspace-policies", 404, "NOT_FOUND"},
		"D17 policy":           {http.MethodPut, "/api/v1/workspace-policies/p1", 404, "NOT_FOUND"},
		"wrong method":         {http.MethodPatch, "/api/v1/gpr", 405, "METHOD_NOT_ALLOWED"},
		"wrong method on list": {http.MethodPost, "/api/v1/gpr/list", 405, "METHOD_NOT_ALLOWED"},
		"wrong method on auth": {http.MethodGet, "/api/v1/auth", 405, "METHOD_NOT_ALLOWED"},
		"panic":                {http.MethodGet, "/panic", 500, "INTERNAL"},
		"no token":             {http.MethodGet, "/api/v1/gpr/list?sliceName=ws", 401, "UNAUTHENTICATED"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := f.do(tc.method, tc.path, "", "")
			if r.status != tc.wantStatus || r.env["status"] != tc.wantCode {
				t.Fatalf("%s %s = %d %s, want %d %s", tc.method, tc.path, r.status, r.body, tc.wantStatus, tc.wantCode)
			}
			if strings.Contains(r.body, "secret detail") {
				t.Errorf("panic detail leaked: %s", r.body)
			}
			if _, ok := r.env["data"]; !ok || r.env["data"] != nil {
				t.Errorf("data should be null on failure: %s", r.body)
			}
		})
	}
}

func TestHealth(t *testing.T) {
	f := newFixture(t, "")
	for _, path := range []string{"/healthz", "/readyz"} {
		r := f.do(http.MethodGet, path, "", "")
		if r.body != `{"statusCode":200,"status":"OK","message":"Success","data":{}}` {
			t.Errorf("GET %s = %d %s", path, r.status, r.body)
		}
	}
	ready := false
	f.server.ready = func() bool { return ready }
	if r := f.do(http.MethodGet, "/readyz", "", ""); r.status != http.StatusServiceUnavailable {
		t.Errorf("not ready: GET /readyz = %d %s, want 503", r.status, r.body)
	}
}
