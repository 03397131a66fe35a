package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/libs/rpc"

	"github.com/open-egs/egs/services/api/internal/egs"
)

// Live event stream tuning.
const (
	// StreamHeartbeat is how often an idle event stream sends a comment, so
	// proxies keep it open and a vanished client is noticed.
	StreamHeartbeat = 15 * time.Second
	// StreamRetry is the reconnection delay the stream tells browsers.
	StreamRetry = 3 * time.Second
	// streamWriteTimeout bounds one write to a stream's client.
	streamWriteTimeout = 30 * time.Second
	// streamBuffer is how many events wait for a slow client before NATS
	// drops them for this subscription (the client re-reads its lists when
	// it reconnects, so a drop costs freshness, not correctness).
	streamBuffer = 1024
	// maxStreamWorkspaces bounds the workspace= parameters of one stream.
	maxStreamWorkspaces = 64
	// maxHistory bounds the events GET /api/v1/gpr/events returns.
	maxHistory = 1000
)

// streams lets the edge end every open event stream at shutdown: they never
// go idle, so http.Server.Shutdown would otherwise wait for its whole grace
// period.
type streams struct {
	once sync.Once
	stop chan struct{}
}

func newStreams() *streams { return &streams{stop: make(chan struct{})} }

// StopStreams ends every open event stream (now and later). Register it with
// http.Server.RegisterOnShutdown. It is safe to call more than once.
func (s *Server) StopStreams() { s.streams.once.Do(func() { close(s.streams.stop) }) }

// registerEvents adds the live event stream and a GPR's event history.
func (s *Server) registerEvents(v1 *echo.Group) {
	v1.GET("/events/stream", s.eventStream, s.require(Read))
	v1.GET("/gpr/events", s.gprEvents, s.require(Read))
}

// eventStream is GET /api/v1/events/stream[?workspace=<ws>...]: server-sent
// events, one "gpr" event per GPR transition (data: the events.GPR payload,
// id: the event id) of the named workspaces, or of every workspace the caller
// may see when none is named. It subscribes to egs.gpr.v1.<ws>.> (core NATS:
// only events published while the stream is open) and ends when the client
// goes, or the edge shuts down.
func (s *Server) eventStream(c echo.Context) error {
	ctx := c.Request().Context()
	caller := callerOf(ctx)
	subjects, err := s.streamSubjects(c, caller, c.QueryParams()["workspace"])
	if err != nil {
		return err
	}
	msgs := make(chan *nats.Msg, streamBuffer)
	subs := make([]*nats.Subscription, 0, len(subjects))
	defer func() {
		for _, sub := range subs {
			_ = sub.Unsubscribe()
		}
	}()
	for _, subj := range subjects {
		sub, err := s.nc.ChanSubscribe(subj, msgs)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", subj, err)
		}
		subs = append(subs, sub)
	}
	// The server knows the subscriptions before the client hears that the
	// stream is open, so a client that re-reads its GPRs then misses nothing.
	fctx, cancel := context.WithTimeout(ctx, s.timeout)
	err = s.nc.FlushWithContext(fctx)
	cancel()
	if err != nil {
		return rpc.Errorf(rpc.Unavailable, "flush event subscriptions: %v", err)
	}

	w := c.Response()
	rc := http.NewResponseController(w)
	// A stream outlives the server's request deadlines: no read deadline
	// (nothing more is read), and each write gets its own below.
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	send := func(frame string) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := w.Write([]byte(frame)); err != nil {
			return false
		}
		w.Flush()
		return true
	}
	if !send(fmt.Sprintf("retry: %d\n: open\n\n", StreamRetry.Milliseconds())) {
		return nil
	}
	tick := time.NewTicker(StreamHeartbeat)
	defer tick.Stop()
	for {
		var frame string
		select {
		case <-ctx.Done():
			return nil
		case <-s.streams.stop:
			return nil
		case <-tick.C:
			frame = ": ping\n\n"
		case m := <-msgs:
			f, ok := gprFrame(m.Data, caller)
			if !ok {
				s.log.DebugContext(ctx, "event stream: skipped message", logkey.Subject, m.Subject)
				continue
			}
			frame = f
		}
		if !send(frame) {
			return nil
		}
	}
}

// streamSubjects checks the workspaces a stream asks for and returns the
// subjects to subscribe to: one filter per workspace, or every GPR event
// when none is named and the caller may see every workspace.
func (s *Server) streamSubjects(c echo.Context, caller rpc.Caller, names []string) ([]string, error) {
	if len(names) > maxStreamWorkspaces {
		return nil, rpc.Errorf(rpc.Invalid, "at most %d workspaces per stream", maxStreamWorkspaces)
	}
	var wss []string
	for _, ws := range names {
		if _, err := egs.WorkspaceName("workspace", ws); err != nil {
			return nil, err
		}
		if err := allowWorkspace(caller, ws); err != nil {
			return nil, err
		}
		if !slices.Contains(wss, ws) {
			wss = append(wss, ws)
		}
	}
	if len(wss) == 0 {
		if caller.Workspace == "" && len(caller.Workspaces) == 0 {
			return []string{events.SubjectGPRAll}, nil
		}
		for _, ws := range append([]string{caller.Workspace}, caller.Workspaces...) {
			if ws != "" && !slices.Contains(wss, ws) {
				wss = append(wss, ws)
			}
		}
	} else {
		for _, ws := range wss {
			if err := s.workspaceExists(c, ws); err != nil {
				return nil, err
			}
		}
	}
	subjects := make([]string, 0, len(wss))
	for _, ws := range wss {
		subj, err := events.GPRWorkspaceFilter(ws)
		if err != nil {
			return nil, rpc.Errorf(rpc.Invalid, "%v", err)
		}
		subjects = append(subjects, subj)
	}
	return subjects, nil
}

// gprFrame turns one GPR event from the bus into an SSE frame, or reports
// false for a message that is not one or that caller may not see.
func gprFrame(data []byte, caller rpc.Caller) (string, bool) {
	ev, err := bus.ParseEvent(data)
	if err != nil {
		return "", false
	}
	var g events.GPR
	if err := ev.Decode(&g); err != nil || !caller.Allows(g.Workspace) {
		return "", false
	}
	b, err := json.Marshal(g) // one line: SSE data ends at a newline
	if err != nil {
		return "", false
	}
	return "id: " + ev.ID + "\nevent: gpr\ndata: " + string(b) + "\n\n", true
}

// GPRHistory is the data of GET /api/v1/gpr/events: the GPR's events, oldest
// first.
type GPRHistory struct {
	Items []events.GPR `json:"items"`
}

// gprEvents is GET /api/v1/gpr/events?gprId=<id>: the events of one GPR the
// caller may read, as the EGS_GPR stream kept them (at most maxHistory, the
// oldest first), read with an ephemeral ordered consumer.
func (s *Server) gprEvents(c echo.Context) error {
	id := c.QueryParam("gprId")
	if id == "" {
		return rpc.Errorf(rpc.Invalid, "%q is required", "gprId")
	}
	// The scheduler decides 404 and 403 for this caller and names the workspace.
	g, err := call[rpc.GPR](c, s, events.RPCGPRGet, rpc.GPRRef{Caller: callerOf(c.Request().Context()), GPRID: id})
	if err != nil {
		return err
	}
	filter, err := events.GPRFilter(g.Workspace, g.GPRID)
	if err != nil {
		return rpc.Errorf(rpc.Invalid, "%v", err)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.timeout)
	defer cancel()
	items, err := s.readHistory(ctx, filter)
	if err != nil {
		return err
	}
	return ok(c, GPRHistory{Items: items})
}

// readHistory reads the GPR events matching filter from the EGS_GPR stream.
func (s *Server) readHistory(ctx context.Context, filter string) ([]events.GPR, error) {
	items := []events.GPR{}
	js, err := jetstream.New(s.nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	stream, err := js.Stream(ctx, events.StreamGPR)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return items, nil
	}
	if err != nil {
		return nil, rpc.Errorf(rpc.Unavailable, "open stream %s: %v", events.StreamGPR, err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverAllPolicy, InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return nil, rpc.Errorf(rpc.Unavailable, "read %s: %v", filter, err)
	}
	for len(items) < maxHistory {
		batch, err := cons.FetchNoWait(min(256, maxHistory-len(items)))
		if err != nil {
			return nil, rpc.Errorf(rpc.Unavailable, "read %s: %v", filter, err)
		}
		got, last := 0, false
		for m := range batch.Messages() {
			got++
			if meta, err := m.Metadata(); err == nil {
				last = meta.NumPending == 0
			}
			ev, err := bus.ParseEvent(m.Data())
			if err != nil {
				continue
			}
			var g events.GPR
			if ev.Decode(&g) == nil {
				items = append(items, g)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, rpc.Errorf(rpc.Unavailable, "read %s: %v", filter, err)
		}
		if got == 0 || last {
			break
		}
	}
	return items, nil
}
