package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Code classifies an error; the edge maps each to one HTTP status.
type Code string

// The error codes (upper-snake, as the EGS envelope's errorKey).
const (
	BadRequest      Code = "BAD_REQUEST"
	Unauthenticated Code = "UNAUTHENTICATED"
	KeyExpired      Code = "API_KEY_EXPIRED"
	Forbidden       Code = "FORBIDDEN"
	NotFound        Code = "NOT_FOUND"
	Conflict        Code = "CONFLICT"
	Invalid         Code = "UNPROCESSABLE_ENTITY"
	Internal        Code = "INTERNAL"
	Unavailable     Code = "UNAVAILABLE"
	NotImplemented  Code = "NOT_IMPLEMENTED"
)

// Error is an error with a code and a message fit for API clients.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf builds an *Error.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of err: its own if it is (or wraps) an *Error, else Internal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

type reply struct {
	Data  json.RawMessage `json:"data,omitempty"`
	Error *Error          `json:"error,omitempty"`
}

// Method is one endpoint of a service: its full subject and its handler.
type Method struct {
	Subject string
	Handler micro.Handler
}

// Handle adapts a typed function to a micro handler. A body that does not
// decode is answered BAD_REQUEST; an error that is not an *Error is logged and
// answered INTERNAL with a generic message; a panic is recovered likewise.
func Handle[Req, Resp any](log *slog.Logger, timeout time.Duration, fn func(ctx context.Context, req Req) (Resp, error)) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var out reply
		func() {
			defer func() {
				if p := recover(); p != nil {
					log.Error("rpc handler panic", "subject", r.Subject(), "panic", fmt.Sprint(p))
					out = reply{Error: &Error{Code: Internal, Message: "internal error"}}
				}
			}()
			var req Req
			if len(r.Data()) > 0 {
				if err := json.Unmarshal(r.Data(), &req); err != nil {
					out.Error = Errorf(BadRequest, "malformed request body: %v", err)
					return
				}
			}
			resp, err := fn(ctx, req)
			if err != nil {
				var e *Error
				if errors.As(err, &e) && e.Code != Internal {
					out.Error = e
					return
				}
				log.Error("rpc handler", "subject", r.Subject(), "err", err)
				out.Error = &Error{Code: Internal, Message: "internal error"}
				return
			}
			b, err := json.Marshal(resp)
			if err != nil {
				log.Error("rpc encode reply", "subject", r.Subject(), "err", err)
				out.Error = &Error{Code: Internal, Message: "internal error"}
				return
			}
			out.Data = b
		}()
		b, _ := json.Marshal(out)
		if err := r.Respond(b); err != nil {
			log.Warn("rpc respond", "subject", r.Subject(), "err", err)
		}
	})
}

// Serve registers methods as a micro service named name (queue group = name,
// so replicas share load and show in `nats micro ls`). Stop it with Stop.
func Serve(nc *nats.Conn, name, version string, methods ...Method) (micro.Service, error) {
	svc, err := micro.AddService(nc, micro.Config{Name: name, Version: version, QueueGroup: name})
	if err != nil {
		return nil, fmt.Errorf("add micro service %s: %w", name, err)
	}
	for _, m := range methods {
		if err := svc.AddEndpoint(endpointName(m.Subject), m.Handler, micro.WithEndpointSubject(m.Subject)); err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("add endpoint %s: %w", m.Subject, err)
		}
	}
	// The subscriptions are on the server once this returns, so a caller told
	// "ready" right after never meets "no responders".
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("register %s endpoints: %w", name, err)
	}
	return svc, nil
}

func endpointName(subject string) string {
	b := []byte(subject)
	for i, c := range b {
		if c == '.' {
			b[i] = '_'
		}
	}
	return string(b)
}

// DefaultTimeout bounds a call whose ctx has no deadline.
const DefaultTimeout = 5 * time.Second

// Call sends req to subject and decodes the reply's data into a Resp. A
// service error comes back as *Error; no responder or a timeout comes back as
// an *Error with code UNAVAILABLE.
func Call[Resp any](ctx context.Context, nc *nats.Conn, subject string, req any) (Resp, error) {
	var zero Resp
	body, err := json.Marshal(req)
	if err != nil {
		return zero, fmt.Errorf("encode %s request: %w", subject, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	msg, err := nc.RequestWithContext(ctx, subject, body)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return zero, &Error{Code: Unavailable, Message: "service unavailable: " + subject}
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
			return zero, &Error{Code: Unavailable, Message: "service timed out: " + subject}
		}
		return zero, fmt.Errorf("request %s: %w", subject, err)
	}
	var rep reply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return zero, fmt.Errorf("decode %s reply: %w", subject, err)
	}
	if rep.Error != nil {
		return zero, rep.Error
	}
	var out Resp
	if len(rep.Data) > 0 {
		if err := json.Unmarshal(rep.Data, &out); err != nil {
			return zero, fmt.Errorf("decode %s reply data: %w", subject, err)
		}
	}
	return out, nil
}

// Empty is the body of a request or reply that carries nothing.
type Empty struct{}
