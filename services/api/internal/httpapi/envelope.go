package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/libs/rpc"
)

// Envelope is the body of every response (§1.5): these five keys and no
// others.
type Envelope struct {
	StatusCode int        `json:"statusCode"`
	Status     string     `json:"status"`
	Message    string     `json:"message"`
	Data       any        `json:"data"`
	Error      *ErrorBody `json:"error,omitempty"`
}

// ErrorBody is the error member of a failure envelope; Data is always null.
type ErrorBody struct {
	ErrorKey string  `json:"errorKey"`
	Message  string  `json:"message"`
	Data     *string `json:"data"`
}

// Codes of the envelope that have no rpc.Code (D13).
const (
	codeMethodNotAllowed = "METHOD_NOT_ALLOWED"
	codePayloadTooLarge  = "PAYLOAD_TOO_LARGE"
)

// Generic messages, for failures whose detail must not reach clients.
const (
	msgInternal        = "Internal Server Error"
	msgUnavailable     = "Service Unavailable"
	msgUnauthenticated = "Unauthenticated"
	msgForbidden       = "Forbidden"
)

// failure is what one error becomes on the wire.
type failure struct {
	status  int
	code    string
	message string
}

// classify is the one place where errors become HTTP statuses: rpc codes
// (from services or from the edge's own validation) and echo's router errors.
// INTERNAL, UNAVAILABLE and anything unexpected get a generic message; the
// second result says whether the error must be logged.
func classify(err error) (failure, bool) {
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound:
			return failure{http.StatusNotFound, string(rpc.NotFound), "Not Found"}, false
		case http.StatusMethodNotAllowed:
			return failure{http.StatusMethodNotAllowed, codeMethodNotAllowed, "Method Not Allowed"}, false
		case http.StatusRequestEntityTooLarge:
			return failure{http.StatusRequestEntityTooLarge, codePayloadTooLarge, "Request body too large"}, false
		case http.StatusBadRequest:
			return failure{http.StatusBadRequest, string(rpc.BadRequest), "Bad Request"}, false
		}
		return failure{http.StatusInternalServerError, string(rpc.Internal), msgInternal}, true
	}
	var re *rpc.Error
	if !errors.As(err, &re) {
		return failure{http.StatusInternalServerError, string(rpc.Internal), msgInternal}, !errors.Is(err, context.Canceled)
	}
	switch re.Code {
	case rpc.BadRequest:
		return failure{http.StatusBadRequest, string(re.Code), re.Message}, false
	case rpc.Unauthenticated, rpc.KeyExpired:
		return failure{http.StatusUnauthorized, string(rpc.Unauthenticated), msgUnauthenticated}, false
	case rpc.Forbidden:
		return failure{http.StatusForbidden, string(re.Code), re.Message}, false
	case rpc.NotFound:
		return failure{http.StatusNotFound, string(re.Code), re.Message}, false
	case rpc.Conflict:
		return failure{http.StatusConflict, string(re.Code), re.Message}, false
	case rpc.Invalid:
		return failure{http.StatusUnprocessableEntity, string(re.Code), re.Message}, false
	case rpc.NotImplemented:
		return failure{http.StatusNotImplemented, string(re.Code), re.Message}, false
	case rpc.Unavailable:
		return failure{http.StatusServiceUnavailable, string(re.Code), msgUnavailable}, true
	default:
		return failure{http.StatusInternalServerError, string(rpc.Internal), msgInternal}, true
	}
}

// handleError is echo's HTTPErrorHandler: every failure, including the
// router's 404 and 405 and recovered panics, leaves as an envelope.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	f, logIt := classify(err)
	if logIt {
		s.log.ErrorContext(c.Request().Context(), "request failed",
			"method", c.Request().Method, "path", c.Request().URL.Path, "status", f.status, logkey.Err, err)
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(f.status)
		return
	}
	if werr := writeEnvelope(c, f.status, Envelope{
		StatusCode: f.status, Status: f.code, Message: f.message,
		Error: &ErrorBody{ErrorKey: f.code, Message: f.message},
	}); werr != nil {
		s.log.WarnContext(c.Request().Context(), "write error response", logkey.Err, werr)
	}
}

// ok answers 200 with the success envelope around data.
func ok(c echo.Context, data any) error {
	return writeEnvelope(c, http.StatusOK, Envelope{StatusCode: http.StatusOK, Status: "OK", Message: "Success", Data: data})
}

func writeEnvelope(c echo.Context, status int, env Envelope) error {
	b, err := json.Marshal(env)
	if err != nil {
		return err
	}
	return c.JSONBlob(status, b)
}
