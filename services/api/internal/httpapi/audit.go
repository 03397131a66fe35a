package httpapi

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"
)

// AuditSource is the CloudEvents source of the audit events the edge
// publishes (session decisions: created, logged-out, revoked).
const AuditSource = "egs/api"

// Auditor publishes the edge's audit events about portal sessions on the
// edge's own stream EGS_SESSION, egs.session.v1.<id>.<event> (the auth
// stream has one writer, the auth service), never with a secret or a
// session id. A nil *Auditor publishes nothing.
type Auditor struct {
	pub *bus.Publisher
	log *slog.Logger
	now func() time.Time
}

// NewAuditor returns an auditor publishing on js (EnsureSessionStream
// declares its stream).
func NewAuditor(js jetstream.JetStream, log *slog.Logger, now func() time.Time) *Auditor {
	if now == nil {
		now = time.Now
	}
	return &Auditor{pub: bus.NewPublisher(js), log: log, now: now}
}

// EnsureSessionStream declares EGS_SESSION, the edge's stream of session
// audit events (kept 90 days, like the auth stream's audit).
func EnsureSessionStream(ctx context.Context, js jetstream.JetStream) error {
	_, err := bus.EnsureStream(ctx, js, bus.StreamDefaults(jetstream.StreamConfig{
		Name: events.StreamSession, Subjects: []string{events.SubjectSessionAll}, Storage: jetstream.FileStorage,
		MaxAge: 90 * 24 * time.Hour,
	}))
	return err
}

// Publish publishes one event; family is events.AuthFamilySession. The decision it records is already made
// (a session cannot be un-deleted), so a failure is logged, not returned.
func (a *Auditor) Publish(ctx context.Context, family, id, ev string, p events.AuthAudit) {
	if a == nil {
		return
	}
	p.Action = family + "." + ev
	if p.At.IsZero() {
		p.At = a.now().UTC()
	}
	subject, err := events.SessionAuditSubject(id, ev)
	if err == nil {
		var e bus.Event
		if e, err = bus.NewEvent("", AuditSource, events.EventType(family, ev), id, p.At, p); err == nil {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			err = a.pub.Publish(ctx, subject, e)
		}
	}
	if err != nil {
		a.log.ErrorContext(ctx, "publish audit event", "action", p.Action, logkey.Err, err)
	}
}
