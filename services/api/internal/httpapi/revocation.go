package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/libs/token"

	"github.com/open-egs/egs/services/api/internal/session"
)

// Revocations applies the auth service's revocation events to what the edge
// holds beyond the deny list of the Authenticator: the cached users and the
// portal sessions in Redis. Every replica subscribes (core NATS) and acts;
// the Redis deletions are idempotent, so many replicas doing the same is
// harmless.
//
//   - egs.auth.v1.user.<id>.updated|deleted: the user is read anew (a
//     deleted user's sessions fail on their next request) and, when deleted,
//     their sessions are deleted;
//   - egs.auth.v1.usertoken.<id>.revoked and egs.auth.v1.apikey.<id>.deleted:
//     the sessions opened with that credential are deleted.
type Revocations struct {
	users    *UserDirectory
	sessions *session.Store
	log      *slog.Logger
}

// NewRevocations returns the handler; users or sessions may be nil.
func NewRevocations(users *UserDirectory, sessions *session.Store, log *slog.Logger) *Revocations {
	return &Revocations{users: users, sessions: sessions, log: log}
}

// revocationSubjects are the subjects Revocations handles.
var revocationSubjects = []string{events.SubjectUserChanged, events.SubjectAccessTokenRevoked, SubjectAPIKeyDeleted}

// Subscribe subscribes to the revocation subjects; the caller unsubscribes.
func (r *Revocations) Subscribe(nc *nats.Conn) ([]*nats.Subscription, error) {
	var subs []*nats.Subscription
	for _, subj := range revocationSubjects {
		sub, err := nc.Subscribe(subj, func(m *nats.Msg) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			r.apply(ctx, m.Subject, m.Data)
		})
		if err != nil {
			for _, s := range subs {
				_ = s.Unsubscribe()
			}
			return nil, fmt.Errorf("subscribe %s: %w", subj, err)
		}
		subs = append(subs, sub)
	}
	return subs, nil
}

// apply handles one event; failures are logged (and the sessions concerned
// still fail on use where the edge can tell: deleted users, denied keys).
func (r *Revocations) apply(ctx context.Context, subject string, data []byte) {
	toks := strings.Split(subject, ".")
	if len(toks) != 6 {
		return
	}
	family, id, ev := toks[3], toks[4], toks[5]
	switch {
	case family == events.AuthFamilyUser && (ev == events.AuthUpdated || ev == events.AuthDeleted):
		e, err := bus.ParseEvent(data)
		var a events.AuthAudit
		if err == nil {
			err = e.Decode(&a)
		}
		if err != nil || a.User == "" {
			if r.users != nil {
				r.users.InvalidateAll()
			}
			return
		}
		if r.users != nil {
			r.users.Invalidate(a.User)
		}
		if ev == events.AuthDeleted && r.sessions != nil {
			r.retry(ctx, "delete the sessions of a deleted user", func() error {
				_, err := r.sessions.DeleteUser(ctx, a.User)
				return err
			})
		}
	case (family == events.AuthFamilyAccessToken && ev == events.AuthRevoked) || (family == "apikey" && ev == "deleted"):
		if r.sessions != nil {
			r.retry(ctx, "delete the sessions of a revoked credential", func() error {
				_, err := r.sessions.DeleteOrigin(ctx, id)
				return err
			})
		}
	}
}

func (r *Revocations) retry(ctx context.Context, what string, fn func() error) {
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if err = fn(); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			r.log.ErrorContext(ctx, what, logkey.Err, err)
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	r.log.ErrorContext(ctx, what, logkey.Err, err)
}

// CatchUp applies the revocations of credentials recorded on the auth
// stream within window (the sessions' absolute lifetime) and returns how
// many it read: sessions opened with a credential revoked while no edge
// ran are deleted too. Call it after Subscribe. A missing stream means
// nothing was revoked.
func (r *Revocations) CatchUp(ctx context.Context, js jetstream.JetStream, window time.Duration) (int, error) {
	if r.sessions == nil {
		return 0, nil
	}
	stream, err := js.Stream(ctx, events.StreamAuth)
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("open stream %s: %w", events.StreamAuth, err)
	}
	start := time.Now().Add(-window)
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{events.SubjectAccessTokenRevoked, SubjectAPIKeyDeleted},
		DeliverPolicy:     jetstream.DeliverByStartTimePolicy,
		OptStartTime:      &start,
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return 0, fmt.Errorf("read %s revocations: %w", events.StreamAuth, err)
	}
	n := 0
	for {
		batch, err := cons.FetchNoWait(catchUpBatch)
		if err != nil {
			return n, fmt.Errorf("read %s revocations: %w", events.StreamAuth, err)
		}
		got, last := 0, false
		for m := range batch.Messages() {
			got++
			if meta, err := m.Metadata(); err == nil {
				last = meta.NumPending == 0
			}
			r.apply(ctx, m.Subject(), m.Data())
			n++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return n, fmt.Errorf("read %s revocations: %w", events.StreamAuth, err)
		}
		if got == 0 || last {
			return n, nil
		}
	}
}

// OAuthRevocationSubjects are the events that revoke OAuth2 tokens and
// signing keys at the edge.
var oauthRevocationSubjects = []string{events.SubjectOAuthRevoked, events.SubjectClientDeleted, events.SubjectSigningKeyAll}

// SubscribeOAuth subscribes the authenticator to OAuth2 revocations: a
// revoked access token (by its jti, until it expires), a deleted client
// (its tokens, for a token lifetime) and a rotated or revoked signing key
// (the JWKS is fetched at once). The caller unsubscribes.
func (a *Authenticator) SubscribeOAuth(nc *nats.Conn) ([]*nats.Subscription, error) {
	var subs []*nats.Subscription
	for _, subj := range oauthRevocationSubjects {
		sub, err := nc.Subscribe(subj, func(m *nats.Msg) { a.applyOAuth(m.Subject, m.Data) })
		if err != nil {
			for _, s := range subs {
				_ = s.Unsubscribe()
			}
			return nil, fmt.Errorf("subscribe %s: %w", subj, err)
		}
		subs = append(subs, sub)
	}
	return subs, nil
}

func (a *Authenticator) applyOAuth(subject string, data []byte) {
	toks := strings.Split(subject, ".")
	if len(toks) != 6 {
		return
	}
	family, id, ev := toks[3], toks[4], toks[5]
	var p events.AuthAudit
	if e, err := bus.ParseEvent(data); err == nil {
		_ = e.Decode(&p)
	}
	switch {
	case family == events.AuthFamilyOAuth && ev == events.AuthRevoked:
		until := p.Until
		if until.IsZero() {
			until = a.now().Add(token.TTL)
		}
		a.DenyUntil(jtiKey(id), until)
	case family == events.AuthFamilyClient && ev == events.AuthDeleted:
		a.Revoke(id)
	case family == events.AuthFamilySigningKey:
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.ForceRefresh(ctx); err != nil {
			a.log.Warn("jwks refresh after a signing key change", logkey.Err, err)
		}
	}
}
