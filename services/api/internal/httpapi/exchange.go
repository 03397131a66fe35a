package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/libs/rpc"

	"github.com/open-egs/egs/services/api/internal/egs"
)

// The failure bodies of POST /api/v1/auth, exactly as §2.1 lists them:
// clients branch on the status and compare the expiry message verbatim.
const (
	authBadRequestBody = `{"statusCode":400,"status":"UNHANDLED_REQUEST_ERROR","message":"Api Key Configuration is invalid. Request a new API-key or contact administrator","error":{"errorKey":"UNHANDLED_REQUEST_ERROR","message":"Api Key Configuration is invalid. Request a new API-key or contact administrator","data":null}}`
	authExpiredBody    = `{"statusCode":401,"status":"UNAUTHENTICATED","message":"Api Key has expired","error":{"errorKey":"UNAUTHENTICATED","message":"Api Key has expired","data":null}}`
	authUnknownBody    = `{"statusCode":401,"status":"UNAUTHENTICATED","message":"Unauthenticated","error":{"errorKey":"UNAUTHENTICATED","message":"Unauthenticated","data":null}}`
)

// exchange is POST /api/v1/auth: an API key for an access token. It answers
// by itself instead of through handleError because its bodies are fixed and
// any status other than 200, 400 and 401 must read as "unreachable" (503).
func (s *Server) exchange(c echo.Context) error {
	var b egs.AuthBody
	raw, err := s.body(c)
	if err == nil {
		err = egs.Decode(raw, &b)
	}
	if err != nil || b.APIKey == nil || *b.APIKey == "" {
		return c.JSONBlob(http.StatusBadRequest, []byte(authBadRequestBody))
	}
	rep, err := call[rpc.ExchangeReply](c, s, events.RPCAuthExchange, rpc.ExchangeRequest{APIKey: *b.APIKey})
	switch code := rpc.CodeOf(err); {
	case err == nil && rep.Token != "":
		return ok(c, egs.Token{Token: rep.Token})
	case err == nil:
		s.log.ErrorContext(c.Request().Context(), "auth exchange returned no token")
	case code == rpc.BadRequest:
		return c.JSONBlob(http.StatusBadRequest, []byte(authBadRequestBody))
	case code == rpc.Unauthenticated:
		return c.JSONBlob(http.StatusUnauthorized, []byte(authUnknownBody))
	case code == rpc.KeyExpired:
		return c.JSONBlob(http.StatusUnauthorized, []byte(authExpiredBody))
	default:
		s.log.ErrorContext(c.Request().Context(), "auth exchange", logkey.Err, err)
	}
	return writeEnvelope(c, http.StatusServiceUnavailable, Envelope{
		StatusCode: http.StatusServiceUnavailable, Status: string(rpc.Unavailable), Message: msgUnavailable,
		Error: &ErrorBody{ErrorKey: string(rpc.Unavailable), Message: msgUnavailable},
	})
}
