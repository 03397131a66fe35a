package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/open-egs/egs/libs/logkey"
)

// codeTooManyRequests is the envelope status of a rate-limited request.
const codeTooManyRequests = "TOO_MANY_REQUESTS"

// rateLimited counts the request against its credential's budget and
// reports whether it is over, with how long to wait. A limiter that cannot
// reach Redis lets requests through (and logs): authentication still holds.
func (s *Server) rateLimited(c echo.Context, p principal) (time.Duration, bool) {
	if s.limiter == nil || p.credential == "" {
		return 0, false
	}
	ok, wait, err := s.limiter.Allow(c.Request().Context(), p.credential)
	if err != nil {
		s.log.WarnContext(c.Request().Context(), "rate limit unavailable; allowing", logkey.Err, err)
		return 0, false
	}
	return wait, !ok
}

// tooManyRequests answers 429 with Retry-After in whole seconds (at least 1).
func tooManyRequests(c echo.Context, wait time.Duration) error {
	secs := int((wait + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
	return writeEnvelope(c, http.StatusTooManyRequests, Envelope{StatusCode: http.StatusTooManyRequests,
		Status: codeTooManyRequests, Message: "Too many requests",
		Error: &ErrorBody{ErrorKey: codeTooManyRequests, Message: "Too many requests"}})
}
