// Package natspub publishes the auth service's events on JetStream (stream
// events.StreamAuth) in the bus envelope.
package natspub

import (
	"context"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/services/auth/internal/apikey"
)

// Source is the CloudEvents source of every auth event.
const Source = "egs/auth"

// Event names of API keys.
const (
	KeyCreated = "created"
	KeyDeleted = "deleted"
)

var _ apikey.Events = (*Events)(nil)

// Events publishes egs.auth.v1.apikey.<keyId>.<created|deleted>, never with
// the secret or its hash. Event ids are ak.<keyId>.<event>.<record revision>.
type Events struct {
	pub *bus.Publisher
}

// New returns an Events publisher on js.
func New(js jetstream.JetStream) *Events { return &Events{pub: bus.NewPublisher(js)} }

// Stream is the configuration of the auth stream.
func Stream() jetstream.StreamConfig {
	return bus.StreamDefaults(jetstream.StreamConfig{
		Name:        events.StreamAuth,
		Description: "Auth events (API keys, users, tokens, sessions, logins, OAuth2); owner: auth service",
		Subjects:    []string{events.SubjectAuthAll},
		Storage:     jetstream.FileStorage,
	})
}

// EventID is the id of event ev of key id at record revision rev.
func EventID(id, ev string, rev uint64) string {
	return "ak." + id + "." + ev + "." + strconv.FormatUint(rev, 10)
}

// Created publishes the created event of k, stored at rev; its time is the
// creation time, so a republished event is identical.
func (e *Events) Created(ctx context.Context, k apikey.Key, rev uint64) error {
	return e.publish(ctx, k, KeyCreated, rev, k.CreatedAt)
}

// Deleted publishes the deleted event of k, read at rev.
func (e *Events) Deleted(ctx context.Context, k apikey.Key, rev uint64, at time.Time) error {
	return e.publish(ctx, k, KeyDeleted, rev, at)
}

func (e *Events) publish(ctx context.Context, k apikey.Key, name string, rev uint64, at time.Time) error {
	subject, err := events.APIKeySubject(k.ID, name)
	if err != nil {
		return err
	}
	ev, err := bus.NewEvent(EventID(k.ID, name, rev), Source, events.EventType("apikey", name), k.ID, at,
		events.APIKey{KeyID: k.ID, Name: k.Name, Role: string(k.Role), Workspace: k.Workspace,
			UserName: k.UserName, At: at.UTC()})
	if err != nil {
		return err
	}
	return e.pub.Publish(ctx, subject, ev)
}

// Audit publishes the auth service's audit events,
// egs.auth.v1.<family>.<id>.<event>, whose payload (events.AuthAudit) never
// holds a secret.
type Audit struct {
	pub *bus.Publisher
}

// NewAudit returns an audit publisher on js.
func NewAudit(js jetstream.JetStream) *Audit { return &Audit{pub: bus.NewPublisher(js)} }

// Publish publishes one audit event; eventID "" gets a fresh id.
func (a *Audit) Publish(ctx context.Context, family, id, ev, eventID string, p events.AuthAudit) error {
	subject, err := events.AuthSubject(family, id, ev)
	if err != nil {
		return err
	}
	if eventID == "" {
		eventID = bus.NewID()
	}
	e, err := bus.NewEvent(eventID, Source, events.EventType(family, ev), id, p.At, p)
	if err != nil {
		return err
	}
	return a.pub.Publish(ctx, subject, e)
}
