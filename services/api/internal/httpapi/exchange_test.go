package httpapi

import (
	"context"
	"net/http"
	"testing"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
)

func TestAuthExchange(t *testing.T) {
	f := newFixture(t, "")
	f.serve(method(events.RPCAuthExchange, func(_ context.Context, req rpc.ExchangeRequest) (rpc.ExchangeReply, error) {
		switch req.APIKey {
		case "good":
			return rpc.ExchangeReply{Token: "eyJhbGciOiJFZERTQSJ9.e30.sig"}, nil
		case "expired":
			return rpc.ExchangeReply{}, rpc.Errorf(rpc.KeyExpired, "key expired")
		case "unknown":
			return rpc.ExchangeReply{}, rpc.Errorf(rpc.Unauthenticated, "no such key")
		case "bad":
			return rpc.ExchangeReply{}, rpc.Errorf(rpc.BadRequest, "malformed key")
		case "empty":
			return rpc.ExchangeReply{}, nil
		}
		return rpc.ExchangeReply{}, rpc.Errorf(rpc.Internal, "redis down")
	}))
	const (
		ok200 = `{"statusCode":200,"status":"OK","message":"Success","data":{"token":"eyJhbGciOiJFZERTQSJ9.e30.sig"}}`
		bad   = `{"statusCode":400,"status":"UNHANDLED_REQUEST_ERROR","message":"Api Key Configuration is invalid. Request a new API-key or contact administrator","error":{"errorKey":"UNHANDLED_REQUEST_ERROR","message":"Api Key Configuration is invalid. Request a new API-key or contact administrator","data":null}}`
		exp   = `{"statusCode":401,"status":"UNAUTHENTICATED","message":"Api Key has expired","error":{"errorKey":"UNAUTHENTICATED","message":"Api Key has expired","data":null}}`
		unk   = `{"statusCode":401,"status":"UNAUTHENTICATED","message":"Unauthenticated","error":{"errorKey":"UNAUTHENTICATED","message":"Unauthenticated","data":null}}`
		unav  = `{"statusCode":503,"status":"UNAVAILABLE","message":"Service Unavailable","data":null,"error":{"errorKey":"UNAVAILABLE","message":"Service Unavailable","data":null}}`
	)
	tests := map[string]struct {
		body       string
		wantStatus int
		wantBody   string
	}{
		"good key":           {`{"apiKey":"good"}`, 200, ok200},
		"extra keys ignored": {`{"apiKey":"good","x":1}`, 200, ok200},
		"expired":            {`{"apiKey":"expired"}`, 401, exp},
		"unknown":            {`{"apiKey":"unknown"}`, 401, unk},
		"service says bad":   {`{"apiKey":"bad"}`, 400, bad},
		"malformed":          {`{"apiKey":`, 400, bad},
		"empty body":         {``, 400, bad},
		"missing key":        {`{}`, 400, bad},
		"null key":           {`{"apiKey":null}`, 400, bad},
		"empty key":          {`{"apiKey":""}`, 400, bad},
		"wrong type":         {`{"apiKey":42}`, 400, bad},
		"internal":           {`{"apiKey":"boom"}`, 503, unav},
		"no token":           {`{"apiKey":"empty"}`, 503, unav},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := f.do(http.MethodPost, "/api/v1/auth", "", tc.body)
			if r.status != tc.wantStatus || r.body != tc.wantBody {
				t.Errorf("POST /api/v1/auth %s\n got %d %s\nwant %d %s", tc.body, r.status, r.body, tc.wantStatus, tc.wantBody)
			}
		})
	}
}

func TestAuthExchangeWithoutAuthService(t *testing.T) {
	f := newFixture(t, "")
	r := f.do(http.MethodPost, "/api/v1/auth", "", `{"apiKey":"k"}`)
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("no auth service: %d %s, want 503", r.status, r.body)
	}
}
