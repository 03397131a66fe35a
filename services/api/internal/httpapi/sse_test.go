package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/rpc"
)

// gprEvent publishes one GPR event as the scheduler does (on JetStream when
// js is set, else core NATS).
func (f *fixture) gprEvent(js jetstream.JetStream, ws, id string, seq int, ev events.GPREvent) {
	f.t.Helper()
	subject, err := events.GPRSubject(ws, id, ev)
	if err != nil {
		f.t.Fatal(err)
	}
	e, err := bus.NewEvent(id+"."+string(rune('0'+seq)), "egs/gpr-scheduler", events.EventType("gpr", string(ev)), id,
		time.Now(), events.GPR{GPRID: id, Workspace: ws, Name: "train", Event: ev, Seq: seq, Reason: "because " + string(ev)})
	if err != nil {
		f.t.Fatal(err)
	}
	if js != nil {
		if err := bus.NewPublisher(js).Publish(context.Background(), subject, e); err != nil {
			f.t.Fatal(err)
		}
		return
	}
	b, _ := json.Marshal(e)
	if err := f.nc.Publish(subject, b); err != nil {
		f.t.Fatal(err)
	}
}

// sseFrame is one event of a text/event-stream.
type sseFrame struct{ id, event, data string }

// openStream starts GET path and returns a reader of its frames; the
// comment lines (": open", ": ping") are skipped.
func openStream(t *testing.T, url, token string) (*http.Response, <-chan sseFrame) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	frames := make(chan sseFrame, 16)
	go func() {
		defer close(frames)
		sc := bufio.NewScanner(resp.Body)
		var f sseFrame
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if f.event != "" {
					frames <- f
				}
				f = sseFrame{}
			case strings.HasPrefix(line, "id: "):
				f.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				f.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				f.data = line[6:]
			case strings.HasPrefix(line, "retry: "):
				f.event = "retry"
				f.data = line[7:]
			}
		}
	}()
	return resp, frames
}

func next(t *testing.T, frames <-chan sseFrame) sseFrame {
	t.Helper()
	select {
	case f, ok := <-frames:
		if !ok {
			t.Fatal("stream ended")
		}
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("no frame within 5s")
	}
	return sseFrame{}
}

// TestEventStream: a workspace's GPR events reach its stream as they are
// published, other workspaces' never; the caller's workspaces are checked
// like on every route; shutdown ends the stream.
func TestEventStream(t *testing.T) {
	f := newFixture(t, "")
	f.serve(method(events.RPCWorkspaceGet, func(_ context.Context, req rpc.WorkspaceRef) (rpc.Workspace, error) {
		if req.Name == "ghost" {
			return rpc.Workspace{}, rpc.Errorf(rpc.NotFound, "workspace %s not found", req.Name)
		}
		return rpc.Workspace{Name: req.Name}, nil
	}))
	editor := f.token("k-ed", "Editor", "team-a", time.Minute)

	resp, frames := openStream(t, f.http.URL+"/api/v1/events/stream?workspace=team-a", editor)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		t.Fatalf("stream = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if fr := next(t, frames); fr.event != "retry" || fr.data != "3000" {
		t.Fatalf("first frame %+v, want retry: 3000", fr)
	}
	// The subscription is in place once the stream answered: nothing is lost.
	f.gprEvent(nil, "team-b", "gpr-bbbbbbbb-0001", 1, events.GPRCreated)
	f.gprEvent(nil, "team-a", "gpr-aaaaaaaa-0001", 1, events.GPRCreated)
	f.gprEvent(nil, "team-a", "gpr-aaaaaaaa-0001", 2, events.GPRProvisioned)
	for _, want := range []events.GPREvent{events.GPRCreated, events.GPRProvisioned} {
		fr := next(t, frames)
		var g events.GPR
		if err := json.Unmarshal([]byte(fr.data), &g); err != nil {
			t.Fatalf("data %q: %v", fr.data, err)
		}
		if fr.event != "gpr" || g.Workspace != "team-a" || g.Event != want || fr.id != g.GPRID+"."+string(rune('0'+g.Seq)) {
			t.Errorf("frame %+v, want the %s event of team-a", fr, want)
		}
	}

	// Without workspace=, an Editor gets its own workspace's events.
	_, own := openStream(t, f.http.URL+"/api/v1/events/stream", editor)
	next(t, own)
	f.gprEvent(nil, "team-b", "gpr-bbbbbbbb-0001", 2, events.GPRQueued)
	f.gprEvent(nil, "team-a", "gpr-aaaaaaaa-0002", 1, events.GPRCreated)
	if fr := next(t, own); !strings.Contains(fr.data, `"gprId":"gpr-aaaaaaaa-0002"`) {
		t.Errorf("own-workspace stream got %+v", fr)
	}

	// Refusals answer before the stream starts, as envelopes.
	for name, tc := range map[string]struct {
		path, token string
		status      int
	}{
		"other workspace":   {"/api/v1/events/stream?workspace=team-b", editor, 403},
		"bad name":          {"/api/v1/events/stream?workspace=Team.A", editor, 422},
		"unknown workspace": {"/api/v1/events/stream?workspace=ghost", f.token("k-own", "Owner", "", time.Minute), 404},
		"no token":          {"/api/v1/events/stream?workspace=team-a", "", 401},
	} {
		t.Run(name, func(t *testing.T) {
			if r := f.do(http.MethodGet, tc.path, tc.token, ""); r.status != tc.status {
				t.Errorf("%s = %d %s, want %d", tc.path, r.status, r.body, tc.status)
			}
		})
	}

	// Shutdown ends every open stream, so the server's Shutdown need not
	// wait for its grace period.
	f.server.StopStreams()
	for _, ch := range []<-chan sseFrame{frames, own} {
		select {
		case _, ok := <-ch:
			for ok {
				_, ok = <-ch
			}
		case <-time.After(5 * time.Second):
			t.Fatal("stream still open after StopStreams")
		}
	}
}

// TestGPRHistory: GET /api/v1/gpr/events returns the GPR's events from the
// EGS_GPR stream, oldest first, after the scheduler allowed the caller.
func TestGPRHistory(t *testing.T) {
	f := newFixture(t, "")
	js, err := jetstream.New(f.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: events.StreamGPR, Subjects: []string{events.SubjectGPRAll}}); err != nil {
		t.Fatal(err)
	}
	f.serve(method(events.RPCGPRGet, func(_ context.Context, req rpc.GPRRef) (rpc.GPR, error) {
		if !req.Caller.Allows("team-a") {
			return rpc.GPR{}, rpc.Errorf(rpc.Forbidden, "Forbidden")
		}
		if req.GPRID != "gpr-aaaaaaaa-0001" {
			return rpc.GPR{}, rpc.Errorf(rpc.NotFound, "GPR %s not found", req.GPRID)
		}
		return rpc.GPR{GPRID: req.GPRID, Workspace: "team-a"}, nil
	}))
	f.gprEvent(js, "team-a", "gpr-aaaaaaaa-0001", 1, events.GPRCreated)
	f.gprEvent(js, "team-a", "gpr-aaaaaaaa-0002", 1, events.GPRCreated) // another GPR
	f.gprEvent(js, "team-a", "gpr-aaaaaaaa-0001", 2, events.GPRQueued)
	f.gprEvent(js, "team-a", "gpr-aaaaaaaa-0001", 3, events.GPRProvisioned)

	viewer := f.token("k-v", "Viewer", "team-a", time.Minute)
	r := f.do(http.MethodGet, "/api/v1/gpr/events?gprId=gpr-aaaaaaaa-0001", viewer, "")
	if r.status != 200 {
		t.Fatalf("history = %d %s", r.status, r.body)
	}
	var h GPRHistory
	raw, _ := json.Marshal(r.env["data"])
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range h.Items {
		got = append(got, string(e.Event)+":"+e.Reason)
	}
	if want := "created:because created,queued:because queued,provisioned:because provisioned"; strings.Join(got, ",") != want {
		t.Errorf("history %v, want %s", got, want)
	}

	for name, tc := range map[string]struct {
		path, token string
		status      int
	}{
		"other workspace": {"/api/v1/gpr/events?gprId=gpr-aaaaaaaa-0001", f.token("k-b", "Viewer", "team-b", time.Minute), 403},
		"unknown":         {"/api/v1/gpr/events?gprId=gpr-00000000-0000", viewer, 404},
		"no id":           {"/api/v1/gpr/events", viewer, 422},
	} {
		t.Run(name, func(t *testing.T) {
			if r := f.do(http.MethodGet, tc.path, tc.token, ""); r.status != tc.status {
				t.Errorf("%s = %d %s, want %d", tc.path, r.status, r.body, tc.status)
			}
		})
	}
}

// TestPortalMount: the portal answers its pages and assets, and every API
// path keeps the API's answers (404 and 405 envelopes included).
func TestPortalMount(t *testing.T) {
	f := newFixture(t, "/egs")
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(f.http.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, p := range []string{"/", "/egs/", "/egs", "/login", "/egs/requests/gpr-1", "/egs//admin/users/"} {
		resp, body := get(p)
		if resp.StatusCode != 200 || !strings.Contains(body, `<base href="/egs/">`) {
			t.Errorf("GET %s = %d, want the portal page with its base", p, resp.StatusCode)
		}
	}
	if resp, body := get("/egs/assets/js/app.js"); resp.StatusCode != 200 || !strings.Contains(body, "import") {
		t.Errorf("GET app.js = %d", resp.StatusCode)
	}
	for name, tc := range map[string]struct {
		method, path string
		status       int
	}{
		"unknown path":         {http.MethodGet, "/nope", 404},
		"unknown api path":     {http.MethodGet, "/api/v1/nope", 404},
		"api method":           {http.MethodPost, "/api/v1/gpr/list", 405},
		"metrics needs token":  {http.MethodGet, "/egs/metrics", 401},
		"probe":                {http.MethodGet, "/healthz", 200},
		"write to a page":      {http.MethodPost, "/nope", 404},
		"login link is an api": {http.MethodGet, "/login/direct?code=x", 0},
	} {
		t.Run(name, func(t *testing.T) {
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			req, _ := http.NewRequest(tc.method, f.http.URL+tc.path, nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if strings.Contains(string(b), "<!doctype html>") {
				t.Errorf("%s %s answered the portal page", tc.method, tc.path)
			}
			if tc.status != 0 && resp.StatusCode != tc.status {
				t.Errorf("%s %s = %d %s, want %d", tc.method, tc.path, resp.StatusCode, b, tc.status)
			}
		})
	}
}
