package natsapi

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/services/auth/internal/apikey"
	"github.com/open-egs/egs/services/auth/internal/users"
)

// DurableWorkspaces is the auth service's durable consumer of workspace
// deletions (events.SubjectWorkspaceDeleted on events.StreamWorkspace).
// Renaming it replays the stream.
const DurableWorkspaces = events.DurableAuthWorkspaces

// WorkspaceDeleted returns the handler of egs.workspace.v1.<ws>.deleted: it
// deletes every Editor and Viewer key of the workspace exactly as an API key
// delete does, each with its egs.auth.v1.apikey.<id>.deleted event, so edges
// revoke their tokens. A redelivered event finds the keys gone and deletes
// nothing more; their deleted events have fixed ids, so a retry after a
// partial failure publishes no duplicates. An event that names no valid
// workspace is dead-lettered.
//
// When users is set, the workspace is also removed from every user holding
// a role in it (each change with its egs.auth.v1.user.<userId>.updated event).
func WorkspaceDeleted(m *apikey.Manager, log *slog.Logger, userMgr ...*users.Manager) bus.Handler {
	return func(ctx context.Context, ev bus.Event, msg jetstream.Msg) error {
		ws, ok := deletedWorkspace(msg.Subject())
		if !ok {
			return bus.Permanent(fmt.Errorf("subject %q is not a workspace deletion", msg.Subject()))
		}
		var w events.Workspace
		if err := ev.Decode(&w); err != nil {
			return bus.Permanent(fmt.Errorf("decode workspace %s deleted: %w", ws, err))
		}
		at := w.At
		if at.IsZero() {
			at = ev.Time
		}
		n, err := m.DeleteWorkspaceKeys(ctx, ws, at)
		if err != nil {
			return err
		}
		if n > 0 {
			log.InfoContext(ctx, "deleted the api keys of a deleted workspace", logkey.Workspace, ws,
				logkey.EventID, ev.ID, "count", n)
		}
		for _, um := range userMgr {
			n, err := um.RemoveWorkspace(ctx, ws)
			if err != nil {
				return err
			}
			if n > 0 {
				log.InfoContext(ctx, "removed a deleted workspace from its users", logkey.Workspace, ws, "count", n)
			}
		}
		return nil
	}
}

// deletedWorkspace returns <ws> of egs.workspace.v1.<ws>.deleted.
func deletedWorkspace(subject string) (string, bool) {
	toks := strings.Split(subject, ".")
	if len(toks) != 5 || toks[4] != events.WorkspaceDeleted || !events.ValidToken(toks[3]) {
		return "", false
	}
	return toks[3], true
}
