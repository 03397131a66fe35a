// Package natspub publishes the workspace service's events on JetStream
// (stream events.StreamWorkspace) in the bus envelope.
package natspub

import (
	"context"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/services/workspace/internal/wire"
	"github.com/open-egs/egs/services/workspace/internal/workspace"
)

// Source is the CloudEvents source of every workspace event.
const Source = "egs/workspace"

// EventPolicyUpdated is the last token of egs.workspace.v1.<ws>.policy-updated.
const EventPolicyUpdated = "policy-updated"

// PolicyUpdated is the payload of egs.workspace.v1.<ws>.policy-updated (type
// io.egs.workspace.policy-updated.v1): the workspace's whole new policy.
// libs/events has no payload for it yet, so it is defined here; it should
// move there once a second service consumes it.
type PolicyUpdated struct {
	Workspace string     `json:"workspace"`
	Policy    rpc.Policy `json:"policy"`
	At        time.Time  `json:"at"`
}

var _ workspace.Events = (*Events)(nil)

// Events publishes egs.workspace.v1.<ws>.<created|deleted|policy-updated>. Event ids are
// ws.<name>.<event>.<record revision>, so publishing the same change twice
// stores it once (within the stream's de-duplication window).
type Events struct {
	pub *bus.Publisher
}

// New returns an Events publisher on js.
func New(js jetstream.JetStream) *Events { return &Events{pub: bus.NewPublisher(js)} }

// Stream is the configuration of the workspace stream.
func Stream() jetstream.StreamConfig {
	return bus.StreamDefaults(jetstream.StreamConfig{
		Name:        events.StreamWorkspace,
		Description: "Workspace events; owner: workspace service",
		Subjects:    []string{events.SubjectWorkspaceAll},
		Storage:     jetstream.FileStorage,
	})
}

// EventID is the id of event ev of workspace name at record revision rev.
func EventID(name, ev string, rev uint64) string {
	return "ws." + name + "." + ev + "." + strconv.FormatUint(rev, 10)
}

// Created publishes the created event of ws, stored at rev. Its time is the
// creation time, so a republished event is identical.
func (e *Events) Created(ctx context.Context, ws workspace.Workspace, rev uint64) error {
	return e.publish(ctx, ws, events.WorkspaceCreated, rev, ws.CreatedAt)
}

// Deleted publishes the deleted event of ws, read at rev.
func (e *Events) Deleted(ctx context.Context, ws workspace.Workspace, rev uint64, at time.Time) error {
	return e.publish(ctx, ws, events.WorkspaceDeleted, rev, at)
}

// PolicyUpdated publishes the policy-updated event of ws, whose policy was
// set at at and stored at rev.
func (e *Events) PolicyUpdated(ctx context.Context, ws workspace.Workspace, rev uint64, at time.Time) error {
	subject, err := events.WorkspaceSubject(ws.Name, EventPolicyUpdated)
	if err != nil {
		return err
	}
	ev, err := bus.NewEvent(EventID(ws.Name, EventPolicyUpdated, rev), Source,
		events.EventType("workspace", EventPolicyUpdated), ws.Name, at,
		PolicyUpdated{Workspace: ws.Name, Policy: wire.PolicyToRPC(ws.Policy), At: at.UTC()})
	if err != nil {
		return err
	}
	return e.pub.Publish(ctx, subject, ev)
}

func (e *Events) publish(ctx context.Context, ws workspace.Workspace, name string, rev uint64, at time.Time) error {
	subject, err := events.WorkspaceSubject(ws.Name, name)
	if err != nil {
		return err
	}
	ev, err := bus.NewEvent(EventID(ws.Name, name, rev), Source, events.EventType("workspace", name), ws.Name, at,
		events.Workspace{
			Name:       ws.Name,
			Clusters:   ws.Clusters,
			Namespaces: ws.Namespaces,
			Username:   ws.Username,
			Email:      ws.Email,
			At:         at.UTC(),
		})
	if err != nil {
		return err
	}
	return e.pub.Publish(ctx, subject, ev)
}
