package standalone_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/testkit/natstest"

	api "github.com/open-egs/egs/services/api/service"
)

// TestEdgeEnforcement: deleting an API key makes the tokens exchanged for
// it fail on every edge within a second; each token has a request budget
// shared by the edges (429 with Retry-After past it); and no audit event on
// the auth stream holds a secret.
func TestEdgeEnforcement(t *testing.T) {
	st := newAuthStack(t, func(st *authStack) {
		st.tuneEdge = func(c *api.Config) { c.RateLimit, c.RateLimitWindow = 6, time.Minute }
	})
	e0, e1 := st.edges[st.addEdge()], st.edges[st.addEdge()]
	validity := time.Now().AddDate(0, 1, 0).Format("2006-01-02")
	k := mustStatus(t, "owner key", asAdmin(t, "POST", e0+"/api/v1/api-key", map[string]string{"name": "ops", "role": "Owner",
		"validity": validity}), 200).data()
	secret := k["apiKey"].(string)
	b := newSClient(t)
	exchange := func(edge string) string {
		t.Helper()
		a := mustStatus(t, "exchange", b.do("POST", edge+"/api/v1/auth", map[string]string{"apiKey": secret}), 200)
		return a.data()["token"].(string)
	}
	tok := exchange(e0)
	for _, e := range []string{e0, e1} {
		mustStatus(t, "token before deletion", b.do("GET", e+"/api/v1/slice-workspace/list", nil, "Authorization", "Bearer "+tok), 200)
	}
	mustStatus(t, "delete key", asAdmin(t, "DELETE", e1+"/api/v1/api-key", map[string]string{"apiKey": secret}), 200)
	took := within(t, time.Second, "a deleted key's token is refused on both edges", func() bool {
		return b.do("GET", e0+"/api/v1/slice-workspace/list", nil, "Authorization", "Bearer "+tok).status == 401 &&
			b.do("GET", e1+"/api/v1/slice-workspace/list", nil, "Authorization", "Bearer "+tok).status == 401
	})
	t.Logf("deleted API key's token refused on both edges after %v", took)

	// Per-token budget, counted across both edges.
	k = mustStatus(t, "second key", asAdmin(t, "POST", e0+"/api/v1/api-key", map[string]string{"name": "ops2", "role": "Owner",
		"validity": validity}), 200).data()
	secret2 := k["apiKey"].(string)
	a := mustStatus(t, "exchange 2", b.do("POST", e0+"/api/v1/auth", map[string]string{"apiKey": secret2}), 200)
	tok2 := a.data()["token"].(string)
	for i := range 6 {
		mustStatus(t, "within budget", b.do("GET", []string{e0, e1}[i%2]+"/api/v1/slice-workspace/list", nil, "Authorization", "Bearer "+tok2), 200)
	}
	a = b.do("GET", e1+"/api/v1/slice-workspace/list", nil, "Authorization", "Bearer "+tok2)
	ra, _ := strconv.Atoi(a.header.Get("Retry-After"))
	if a.status != 429 || a.env["status"] != "TOO_MANY_REQUESTS" || ra < 1 || ra > 60 {
		t.Fatalf("over budget: %d Retry-After %q %s", a.status, a.header.Get("Retry-After"), a.body)
	}
	tok3 := mustStatus(t, "exchange 3", b.do("POST", e0+"/api/v1/auth", map[string]string{"apiKey": secret2}), 200).data()["token"].(string)
	mustStatus(t, "another token has its own budget", b.do("GET", e0+"/api/v1/slice-workspace/list", nil, "Authorization", "Bearer "+tok3), 200)

	// A portal session and a user access token, so that the audit has them too.
	mustStatus(t, "user", asAdmin(t, "POST", e0+"/api/v1/admin/users", map[string]any{"username": "erin"}), 201)
	ut := mustStatus(t, "user token", asAdmin(t, "POST", e0+"/api/v1/admin/users/erin/access-tokens", nil), 201).data()["token"].(string)
	sb := newSClient(t)
	mustStatus(t, "login", sb.login(e0, ut), 200)
	mustStatus(t, "logout", sb.write("POST", e0+"/api/v1/session/logout", nil), 200)
	_ = sb.login(e0, ut+"x")

	// Audit: every decision is on the auth stream, none with a secret.
	nc, js := natstest.Connect(t, st.srv)
	defer nc.Close()
	all := readStream(t, js, events.StreamAuth) + readStream(t, js, events.StreamSession)
	for _, want := range []string{"egs.auth.v1.apikey.", "egs.auth.v1.user.", "egs.auth.v1.usertoken.", "egs.auth.v1.login.",
		"egs.session.v1."} {
		if !strings.Contains(all, want) {
			t.Errorf("no %s* event on the auth or session stream", want)
		}
	}
	for _, want := range []string{"session.", "created", "logged-out", "login.", "failed"} {
		if !strings.Contains(all, want) {
			t.Errorf("audit lacks %q", want)
		}
	}
	for _, s := range []string{secret, secret2, tok, tok2, tok3, ut, stackAdmin} {
		if strings.Contains(all, s) {
			t.Errorf("an auth event holds a secret (%.12s...)", s)
		}
	}
}

// readStream returns every message of stream as "subject data" lines.
func readStream(t *testing.T, js jetstream.JetStream, stream string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for {
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			b.WriteString(m.Subject() + " " + string(m.Data()) + "\n")
		}
		if n == 0 {
			return b.String()
		}
	}
}
