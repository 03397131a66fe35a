package standalone_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/open-egs/egs/services/standalone"
)

// TestPortalLoginPage loads the portal's login page in headless Chromium:
// the three sign-in methods are there and keyboard-reachable, a wrong token
// and a login link that failed show their errors, and no page logs an error.
func TestPortalLoginPage(t *testing.T) {
	p := startPortal(t)
	b := newBrowser(t)
	tb := b.tab("visitor", "http://"+p.info.HTTPAddr)

	tb.open("/login", "#token")
	tb.checkA11y("login")
	if got := tb.text("h1"); got != "Sign in to EGS" {
		t.Errorf("heading %q", got)
	}
	if got := eval[string](tb, `document.activeElement.id`); got != "token" {
		t.Errorf("focus starts on %q, want the token field", got)
	}
	if got := eval[string](tb, `document.querySelector('label[for=token]').textContent`); got != "Access token" {
		t.Errorf("token field label %q", got)
	}
	// Arrow keys move between the tabs (WAI-ARIA tabs pattern).
	tb.click("#tab-token")
	tb.do("arrow right", chromedp.KeyEvent(kb.ArrowRight))
	if got := eval[string](tb, `document.activeElement.id`); got != "tab-idp" {
		t.Errorf("ArrowRight moved focus to %q, want tab-idp", got)
	}
	tb.waitText("#panel-idp", "No identity provider", actionTimeout)

	// A wrong token is refused with the API's own words.
	tb.allow("/api/v1/session/login")
	tb.click("#tab-token")
	tb.fill("#token", "not-a-token")
	tb.click("#login-submit")
	tb.waitVisible("#login-error .alert")
	_, env := p.call("POST", "/api/v1/session/login", map[string]string{"token": "not-a-token"})
	if got := tb.text("#login-error"); got == "" || got != env.Message {
		t.Errorf("login error %q, the API says %q", got, env.Message)
	}

	// A login link that was used already lands on /login?error=...
	msg := "This login link has already been used"
	tb.open("/login?error="+url.QueryEscape(msg), "#login-landing-error")
	if got := tb.text("#login-landing-error"); got != msg {
		t.Errorf("landing error %q, want %q", got, msg)
	}
	if got := eval[string](tb, `document.querySelector('[role=tab][aria-selected=true]').id`); got != "tab-link" {
		t.Errorf("selected tab %q, want tab-link", got)
	}

	// A protected page without a session goes to the login page, keeping
	// where the user wanted to go.
	tb.allow("/api/v1/session") // its 401 is how the page learns there is no session
	tb.open("/observability", "#token")
	if got := tb.path(); got != "/login?next=observability" {
		t.Errorf("redirected to %q", got)
	}
	tb.screenshot("login")
}

// startPortal starts the product for a portal test: node agents sample
// every 250 ms, so GPU charts fill within a second or two.
func startPortal(t *testing.T) *product {
	t.Helper()
	p := startTuned(t, t.TempDir(), func(s *standalone.Services) { s.NodeAgents.Interval = 250 * time.Millisecond })
	p.login()
	return p
}

// TestPortalAcceptance walks issue 7's acceptance in headless Chromium, with
// three people in three browser contexts (own cookies each):
//
//   - an admin signs in with the Owner API token, creates a workspace,
//     registers a user, issues her an access token and a login link, and
//     creates and deletes an API token;
//   - the login link signs in once, and only once;
//   - the user signs in with her access token, sees her workspace, creates a
//     GPR (wait time first, API validation shown), watches a second one go
//     from Queued to Provisioned without reloading while the admin releases
//     the first from the queue page, opens its GPU charts and the
//     observability page, downloads a kubeconfig and early-releases it.
//
// No page may log a console error, throw, or fail a request it did not mean
// to make.
func TestPortalAcceptance(t *testing.T) {
	p := startPortal(t)
	base := "http://" + p.info.HTTPAddr
	b := newBrowser(t)

	// ---- the admin: workspace, user, access token, login link ----
	admin := b.tab("admin", base)
	admin.open("/login", "#token")
	admin.fill("#token", bootstrapKey)
	admin.click("#login-submit")
	admin.waitText("main h1", "GPU Requests", actionTimeout)
	admin.waitVisible(`#nav a[href="admin"]`)

	admin.checkA11y("gpu requests (admin)")
	admin.open("/admin/workspaces", "#ws-form")
	admin.checkA11y("admin workspaces")
	admin.fill("#ws-name", "team-a")
	admin.fill("#ws-username", "alice")
	admin.fill("#ws-email", "alice@example.com")
	admin.click("#ws-cluster-worker-1")
	admin.click("#ws-create")
	admin.waitVisible(`#admin-workspaces tr[data-workspace="team-a"]`)
	// A second workspace, deleted again.
	admin.fill("#ws-name", "scratch")
	admin.fill("#ws-username", "bob")
	admin.fill("#ws-email", "bob@example.com")
	admin.click("#ws-cluster-worker-2")
	admin.click("#ws-create")
	admin.click(`#admin-workspaces tr[data-workspace="scratch"] [data-action="delete-workspace"]`)
	admin.click("#confirm-ok")
	admin.until("scratch deleted", `!document.querySelector('#admin-workspaces tr[data-workspace="scratch"]')`, actionTimeout)
	if code, _ := p.call("GET", "/api/v1/inventory?sliceName=scratch", nil); code != 404 {
		t.Errorf("deleted workspace answers %d", code)
	}

	admin.click("#tab-users")
	admin.fill("#user-name", "alice")
	admin.fill("#user-email", "alice@example.com")
	admin.choose("#user-ws-team-a", "Editor")
	admin.click("#user-create")
	admin.waitVisible(`tr[data-user="alice"]`)
	admin.click(`tr[data-user="alice"] [data-action="issue-token"]`)
	admin.waitVisible("#issued-token")
	accessToken := admin.value("#issued-token")
	admin.click(`tr[data-user="alice"] [data-action="login-link"]`)
	admin.waitVisible("#login-link")
	admin.checkA11y("admin users")
	link := admin.value("#login-link")
	if accessToken == "" || !strings.HasPrefix(link, base+"/login/direct?code=") {
		t.Fatalf("access token %q, login link %q", accessToken, link)
	}
	admin.screenshot("admin-users")

	// ---- the login link: once and only once ----
	viaLink := b.tab("alice-link", base)
	viaLink.visit(link, `section[data-workspace="team-a"]`)
	if got := viaLink.text("#whoami"); got != "alice" {
		t.Errorf("signed in by the link as %q, want alice", got)
	}
	again := b.tab("link-again", base)
	again.visit(link, "#login-landing-error")
	if got := again.path(); !strings.HasPrefix(got, "/login?error=") {
		t.Errorf("second use of the link landed on %q", got)
	}

	// ---- the user: access token, workspaces, a GPR ----
	alice := b.tab("alice", base)
	alice.allow("/api/v1/gpr") // one create below is refused on purpose (422)
	alice.open("/login", "#token")
	alice.fill("#token", accessToken)
	alice.click("#login-submit")
	alice.waitVisible(`section[data-workspace="team-a"]`)
	alice.waitText(`section[data-workspace="team-a"] .empty`, "No GPU requests", actionTimeout)

	alice.click(`section[data-workspace="team-a"] [data-action="new-gpr"]`)
	alice.waitVisible("#gpr-form")
	alice.checkA11y("create gpr")
	if got := alice.value("#gpr-shape"); got == "auto" {
		t.Errorf("no node shape offered from the inventory")
	}
	alice.fill("#gpr-name", "train-1")
	alice.click("#gpr-waittime")
	alice.waitVisible("#gpr-wait .alert")
	alice.screenshot("create-gpr")
	// A priority out of range is refused with the API's own message.
	alice.fill("#gpr-priority", "400")
	alice.click("#gpr-submit")
	alice.waitVisible("#gpr-error .alert")
	_, env := p.call("POST", "/api/v1/gpr", with(gprBody("team-a", "x"), "priority", 400))
	if got := alice.text("#gpr-error"); got != env.Message || got == "" {
		t.Errorf("page shows %q, the API says %q", got, env.Message)
	}
	alice.fill("#gpr-priority", "150")
	alice.click("#gpr-submit")
	alice.waitVisible("#gpr-status-badge")
	alice.waitText("#gpr-status-badge", "Provisioned", 30*time.Second)
	train1 := strings.TrimPrefix(alice.path(), "/requests/")

	// A second GPR of the workspace waits behind the first.
	alice.open("/requests/new?workspace=team-a", "#gpr-form")
	alice.fill("#gpr-name", "train-2")
	alice.click("#gpr-submit")
	alice.waitText("#gpr-status-badge", "Queued", actionTimeout)
	alice.waitVisible("#gpr-reasons li")
	train2 := strings.TrimPrefix(alice.path(), "/requests/")

	// A third one: renamed, given another priority by the admin, deleted
	// while it waits.
	alice.open("/requests/new?workspace=team-a", "#gpr-form")
	alice.fill("#gpr-name", "train-3")
	alice.click("#gpr-submit")
	alice.waitText("#gpr-status-badge", "Queued", actionTimeout)
	train3 := strings.TrimPrefix(alice.path(), "/requests/")
	alice.fill("#edit-name", "train-3-renamed")
	alice.click("#edit-save")
	alice.waitText("#gpr-title", "train-3-renamed", actionTimeout)
	prio3 := fmt.Sprintf(`#admin-queue tr[data-gpr=%q]`, train3)
	admin.open("/admin/queue", prio3+` input[type=number]`)
	admin.fill(prio3+` input[type=number]`, "180")
	admin.click(prio3 + ` [data-action="set-priority"]`)
	var g3 struct {
		GPRName  string `json:"gprName"`
		Priority int    `json:"priority"`
	}
	for deadline := time.Now().Add(actionTimeout); ; time.Sleep(50 * time.Millisecond) {
		p.must("GET", "/api/v1/gpr?gprId="+train3, nil, &g3)
		if g3.Priority == 180 || time.Now().After(deadline) {
			break
		}
	}
	if g3.Priority != 180 || g3.GPRName != "train-3-renamed" {
		t.Errorf("after rename and priority change: %+v", g3)
	}
	alice.click("#delete-gpr")
	alice.click("#confirm-ok")
	alice.waitVisible(fmt.Sprintf(`tr[data-gpr=%q]`, train2))
	alice.until("train-3 gone from the list", fmt.Sprintf(`!document.querySelector('tr[data-gpr=%q]')`, train3), actionTimeout)
	if code, _ := p.call("GET", "/api/v1/gpr?gprId="+train3, nil); code != 404 {
		t.Errorf("deleted GPR answers %d", code)
	}

	// The list shows it queued; it turns Provisioned without a reload once
	// the admin releases the first from the queue page.
	row2 := fmt.Sprintf(`tr[data-gpr=%q]`, train2)
	alice.waitVisible(row2)
	alice.waitText(row2+` [data-field="status"]`, "Queued", actionTimeout)
	alice.waitText(row2, "#1", actionTimeout)
	alice.waitVisible("#live[data-state=open]")
	eval[bool](alice, `window.__stillTheSamePage = true`)
	alice.checkA11y("gpu requests")
	alice.screenshot("gpu-requests")

	admin.open("/admin/queue", fmt.Sprintf(`#admin-queue tr[data-gpr=%q] [data-action="early-release"]`, train1))
	admin.checkA11y("admin queue")
	admin.screenshot("admin-queue")
	admin.click(fmt.Sprintf(`#admin-queue tr[data-gpr=%q] [data-action="early-release"]`, train1))
	admin.click("#confirm-ok")

	// Within 15 s, half the list's 30 s re-read: only the event stream can
	// have brought it.
	alice.waitText(row2+` [data-field="status"]`, "Provisioned", 15*time.Second)
	if !eval[bool](alice, `window.__stillTheSamePage === true`) {
		t.Error("the GPU Requests page reloaded")
	}

	// Its detail page: live GPU charts.
	alice.click(row2 + " a")
	alice.waitText("#gpr-status-badge", "Provisioned", actionTimeout)
	alice.waitVisible(`#gpr-gpu-table table`)
	for _, c := range []string{"util", "mem", "power", "temp"} {
		alice.until("chart "+c+" has points", fmt.Sprintf(`Number(document.querySelector('[data-chart="gpr-%s"]')?.dataset.points || 0) >= 2`, c), 20*time.Second)
	}
	alice.waitVisible(`#gpr-timeline li[data-event="provisioned"]`)
	if *screenshots != "" { // a few seconds of lines make a better picture
		alice.until("charts filled", `Number(document.querySelector('[data-chart="gpr-util"]')?.dataset.points || 0) >= 8 * 10`, 30*time.Second)
	}
	alice.checkA11y("gpr detail")
	alice.screenshot("gpr-detail")

	// The admin's view of every GPU: the busy ones first, idle ones highlighted.
	admin.open("/observability", "#obs-gpus")
	admin.until("busy and idle GPUs", `document.querySelector('#obs-gpus tbody tr[data-idle=false]') && document.querySelector('#obs-gpus tr.idle')`, 20*time.Second)
	if got := eval[string](admin, `document.querySelector('#obs-gpus tbody tr').dataset.idle`); got != "false" {
		t.Errorf("the first GPU of the hotspot list is idle")
	}
	admin.click(`#obs-gpus [data-action="series"]`)
	admin.until("GPU series drawn", `Number(document.querySelector('[data-chart="obs-util"]')?.dataset.points || 0) >= 2`, 20*time.Second)
	admin.checkA11y("observability")
	if *screenshots != "" {
		admin.until("series filled", `Number(document.querySelector('[data-chart="obs-util"]')?.dataset.points || 0) >= 6`, 30*time.Second)
	}
	admin.shot("observability", 1300)

	// Observability: one node set idle by the simulator is highlighted.
	g := p.gpr(train2)
	if len(g.Status.Nodes) == 0 {
		t.Fatalf("%s holds no node", train2)
	}
	p.must("PUT", "/api/v1/sim/nodes/"+g.Status.Nodes[0]+"/load", map[string]any{"utilization": 0}, nil)
	alice.open("/observability?workspace=team-a", "#obs-gpus")
	alice.until("idle GPUs highlighted", `document.querySelectorAll('#obs-gpus tr.idle').length > 0`, 20*time.Second)
	alice.click(`#obs-gpus [data-action="series"]`)
	alice.until("GPU series drawn", `Number(document.querySelector('[data-chart="obs-util"]')?.dataset.points || 0) >= 1`, 20*time.Second)

	// Workspace: a kubeconfig for worker-1.
	alice.open("/workspaces/team-a", "#kubeconfig-worker-1")
	alice.checkA11y("workspace")
	name, kc := alice.download("#kubeconfig-worker-1")
	if name != "kubeconfig-team-a-worker-1.yaml" || !strings.Contains(string(kc), "kind: Config") {
		t.Errorf("downloaded %q: %.200s", name, kc)
	}

	// Early release from the detail page.
	alice.open("/requests/"+train2, "#early-release")
	alice.click("#early-release")
	alice.click("#confirm-ok")
	alice.until("released", `['Releasing', 'Released early'].includes(document.querySelector('#gpr-status-badge')?.dataset.status)`, 30*time.Second)

	// ---- the admin: an API token, created, used, deleted ----
	admin.open("/workspaces/team-a", "#token-form")
	admin.fill("#token-name", "ci-pipeline")
	admin.choose("#token-role", "Editor")
	admin.click("#token-create")
	admin.waitVisible("#token-value")
	secret := admin.value("#token-value")
	admin.waitVisible(`tr[data-token="ci-pipeline"]`)
	admin.screenshot("workspace")
	if code, env := p.call("POST", "/api/v1/auth", map[string]string{"apiKey": secret}); code != 200 {
		t.Errorf("the new API token does not work: %d %s", code, env.Message)
	}
	admin.click(`tr[data-token="ci-pipeline"] [data-action="delete-token"]`)
	admin.click("#confirm-ok")
	admin.until("token gone", `!document.querySelector('tr[data-token="ci-pipeline"]')`, actionTimeout)
	if code, _ := p.call("POST", "/api/v1/auth", map[string]string{"apiKey": secret}); code != 401 {
		t.Errorf("a deleted API token still works: %d", code)
	}

	// ---- the admin: inventory and a policy ----
	admin.open("/admin/inventory", `section[data-cluster="worker-1"] tr[data-node]`)
	admin.checkA11y("admin inventory")
	admin.open("/admin/policies", "#policy-form")
	admin.choose("#policy-workspace", "team-a")
	admin.fill("#policy-max-gpus", "8")
	admin.fill("#policy-max-duration", "2d")
	admin.click("#policy-save")
	admin.waitText("#toasts", "Policy of team-a saved", actionTimeout)
	admin.checkA11y("admin policies")
	var pol struct {
		Policy struct {
			MaxGpusPerGpr   int    `json:"maxGpusPerGpr"`
			MaxExitDuration string `json:"maxExitDuration"`
		} `json:"policy"`
	}
	p.must("GET", "/api/v1/workspace-policy?workspaceName=team-a", nil, &pol)
	if pol.Policy.MaxGpusPerGpr != 8 || pol.Policy.MaxExitDuration != "48h0m0s" {
		t.Errorf("saved policy %+v", pol.Policy)
	}

	// ---- a laptop screen: every page fits its width ----
	alice.atWidth(1024, func() {
		for path, sel := range map[string]string{
			"/": `section[data-workspace="team-a"] table`, "/requests/" + train2: "#gpr-facts dl",
			"/requests/new?workspace=team-a": "#gpr-form", "/observability?workspace=team-a": "#obs-table",
			"/workspaces/team-a": "#kubeconfig-worker-1",
		} {
			alice.open(path, sel)
			alice.checkA11y(path + " at 1024 px")
		}
	})

	// ---- sessions end: revoked by the admin, or signed out ----
	admin.open("/admin/users", `tr[data-user="alice"] [data-action="revoke-sessions"]`)
	admin.click(`tr[data-user="alice"] [data-action="revoke-sessions"]`)
	admin.click("#confirm-ok")
	admin.waitText("#toasts", "Sessions of alice revoked", actionTimeout)
	viaLink.allow("/api/v1/session") // the revoked session's next call is refused
	viaLink.allow("/api/v1/slice-workspace/list")
	viaLink.open("/", "#token")
	if got := viaLink.path(); !strings.HasPrefix(got, "/login") {
		t.Errorf("a revoked session still opens %q", got)
	}
	admin.click("#logout")
	admin.waitVisible("#token")
	admin.allow("/api/v1/session")
	admin.open("/admin", "#token") // the session is gone: back to the login page
	if got := admin.path(); got != "/login?next=admin" {
		t.Errorf("after signing out, /admin opens %q", got)
	}
}

// TestPortalStatusLabels checks, in the browser, how the pages name a GPR's
// state from its wire status (D14's table) and read the API's durations.
func TestPortalStatusLabels(t *testing.T) {
	p := start(t, t.TempDir())
	b := newBrowser(t)
	tb := b.tab("format", "http://"+p.info.HTTPAddr)
	tb.open("/login", "#token")

	labels := map[string]string{ // provisioningStatus/internalState[/pending code|evictedBy] → label
		"Queued/Queued":                     "Queued",
		"Queued/Queued/AWAITING_APPROVAL":   "Awaiting approval",
		"Queued/Reserved":                   "Provisioning",
		"Queued/Provisioned":                "Cancelling",
		"Successful/Provisioned":            "Provisioned",
		"EarlyReleased/Provisioned":         "Releasing",
		"EarlyReleased/Released":            "Released early",
		"Complete/Provisioned":              "Releasing",
		"Complete/Released":                 "Complete",
		"TimedOut/Released":                 "Released (idle)",
		"Error/":                            "Failed",
		"Error//evicted-by:gpr-1234abcd-01": "Evicted",
	}
	js := `(async () => {
	  const f = await import('./assets/js/format.js');
	  const cases = ` + mustJSONString(t, labels) + `;
	  const out = {};
	  for (const k of Object.keys(cases)) {
	    const [ps, is, extra] = k.split('/');
	    const g = {status: {provisioningStatus: ps, internalState: is}, pendingReasons: [], evictedBy: ''};
	    if (extra === 'AWAITING_APPROVAL') g.pendingReasons = [{code: extra, message: 'over policy'}];
	    if (extra && extra.startsWith('evicted-by:')) g.evictedBy = extra.slice(11);
	    out[k] = f.gprStatus(g).label;
	  }
	  out['1h30m0s'] = String(f.parseDuration('1h30m0s'));
	  out['26h0m0s'] = String(f.parseDuration('26h0m0s'));
	  out['2d'] = String(f.parseDuration('2d'));
	  out['dur 5400000'] = f.duration(5400000);
	  out['compose'] = f.composeDuration(1, 2, 3);
	  return out;
	})()`
	got := evalAwait[map[string]string](tb, js)
	want := map[string]string{"1h30m0s": "5400000", "26h0m0s": "93600000", "2d": "172800000", "dur 5400000": "1h 30m", "compose": "1d2h3m"}
	for k, v := range labels {
		want[k] = v
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
}

func mustJSONString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
