package standalone_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// screenshots, when set, is the directory the portal tests write their
// screenshots to (make screenshots: docs/screenshots).
var screenshots = flag.String("portal.screenshots", "", "directory to write portal screenshots to (empty: none)")

// actionTimeout bounds one browser action; waits for the product (a GPR
// being provisioned) pass their own.
const actionTimeout = 15 * time.Second

// chromiumPath finds the browser: $CHROMIUM, else Debian's chromium. A
// missing browser fails the test (scripts/deps.sh --browser installs it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found: run `bash scripts/deps.sh --browser` (Debian's chromium package) or set CHROMIUM")
	return ""
}

// browser is one headless Chromium with a fresh profile for one test.
type browser struct {
	t     *testing.T
	alloc context.Context
	root  context.Context
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	root, cancelRoot := chromedp.NewContext(alloc)
	if err := chromedp.Do(root); err != nil { // starts the browser
		cancelRoot()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		cancelRoot()
		cancelAlloc()
	})
	return &browser{t: t, alloc: alloc, root: root}
}

// tab is one page in its own browser context (its own cookies, like a
// separate user), which records every console error, uncaught exception and
// error entry of the browser log. At the end of the test any of them that
// the test did not expect fails it.
type tab struct {
	t         *testing.T
	name      string
	ctx       context.Context
	base      string
	downloads string

	mu       sync.Mutex
	problems []string
	allowed  []string
}

// tab opens a new isolated tab on the portal at base (http://host:port).
func (b *browser) tab(name, base string) *tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.root, chromedp.WithNewBrowserContext())
	tb := &tab{t: b.t, name: name, ctx: ctx, base: strings.TrimSuffix(base, "/"), downloads: b.t.TempDir()}
	if err := chromedp.Listen(ctx, tb.record); err != nil {
		cancel()
		b.t.Fatalf("%s: listen: %v", name, err)
	}
	if err := chromedp.Do(ctx); err != nil { // opens the tab
		cancel()
		b.t.Fatalf("%s: open tab: %v", name, err)
	}
	bctx := chromedp.FromContext(ctx).BrowserContextID
	if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, BrowserContextID: bctx, DownloadPath: tb.downloads, EventsEnabled: new(true),
	}); err != nil {
		cancel()
		b.t.Fatalf("%s: download behaviour: %v", name, err)
	}
	b.t.Cleanup(func() {
		tb.checkConsole()
		cancel()
	})
	return tb
}

// record runs in the tab's event loop: it must return fast.
func (tb *tab) record(ev any) {
	var problem, url string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		var parts []string
		for _, a := range ev.Args {
			if len(a.Value) > 0 {
				parts = append(parts, string(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		problem = fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(parts, " "))
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		problem = "uncaught exception: " + d.Text
		if d.Exception != nil {
			problem += " " + d.Exception.Description
		}
	case *cdplog.EventEntryAdded:
		if ev.Entry == nil || ev.Entry.Level != cdplog.EntryLevelError {
			return
		}
		problem, url = fmt.Sprintf("browser log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL), ev.Entry.URL
	default:
		return
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, a := range tb.allowed {
		if url != "" && (strings.HasSuffix(url, a) || strings.Contains(url, a+"?")) {
			return
		}
	}
	tb.problems = append(tb.problems, problem)
}

// allow expects browser log errors about the URL path p (the whole path,
// with or without a query): the network layer logs every 4xx answer, and
// some are the point of a step (a validation message the page shows).
func (tb *tab) allow(p string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.allowed = append(tb.allowed, p)
}

// checkConsole fails the test for every console error seen so far.
func (tb *tab) checkConsole() {
	tb.t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, p := range tb.problems {
		tb.t.Errorf("%s: %s", tb.name, p)
	}
	tb.problems = nil
}

// do runs actions under actionTimeout, failing the test on error.
func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.fail(what, err)
	}
}

func (tb *tab) fail(what string, err error) {
	tb.t.Helper()
	loc, _ := chromedp.Run(tb.ctx, chromedp.Location())
	body, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`document.querySelector('main') ? document.querySelector('main').innerText.slice(0, 1500) : ''`))
	tb.mu.Lock()
	problems := strings.Join(tb.problems, "\n")
	tb.mu.Unlock()
	tb.t.Fatalf("%s: %s: %v\nat %s\npage: %s\nconsole: %s", tb.name, what, err, loc, body, problems)
}

// open loads a portal path and waits for sel.
func (tb *tab) open(path, sel string) {
	tb.t.Helper()
	tb.do("open "+path, chromedp.Navigate(tb.base+path), chromedp.WaitVisible(chromedp.CSS(sel)))
}

// visit loads an absolute URL (a login link) and waits for sel.
func (tb *tab) visit(url, sel string) {
	tb.t.Helper()
	tb.do("visit "+url, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(sel)))
}

func (tb *tab) waitVisible(sel string) {
	tb.t.Helper()
	tb.do("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
}

func (tb *tab) click(sel string) {
	tb.t.Helper()
	tb.do("click "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

// fill replaces the value of the input sel by typing v.
func (tb *tab) fill(sel, v string) {
	tb.t.Helper()
	tb.waitVisible(sel)
	// chromedp.Clear resets the value attribute, which no longer shows once
	// the field was edited: empty the live value instead.
	eval[bool](tb, fmt.Sprintf(`(() => { const el = document.querySelector(%s); el.value = ''; el.dispatchEvent(new Event('input', {bubbles: true})); return true; })()`,
		strconv.Quote(sel)))
	tb.do("fill "+sel, chromedp.SendKeys(chromedp.CSS(sel), v))
}

// choose sets a <select> (or any control) to v and fires change, as a user would.
func (tb *tab) choose(sel, v string) {
	tb.t.Helper()
	js := fmt.Sprintf(`(() => { const el = document.querySelector(%s); el.value = %s; el.dispatchEvent(new Event('change', {bubbles: true})); return el.value; })()`,
		strconv.Quote(sel), strconv.Quote(v))
	tb.waitVisible(sel)
	got := eval[string](tb, js)
	if got != v {
		tb.fail("choose "+sel, fmt.Errorf("value is %q, want %q (no such option?)", got, v))
	}
}

func (tb *tab) text(sel string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		tb.fail("text of "+sel, err)
	}
	return strings.TrimSpace(s)
}

func (tb *tab) value(sel string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(sel)))
	if err != nil {
		tb.fail("value of "+sel, err)
	}
	return s
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](tb *tab, js string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		tb.fail("evaluate "+js, err)
	}
	return v
}

// evalAwait evaluates a JavaScript expression whose value is a promise.
func evalAwait[T any](tb *tab, js string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.fail("evaluate "+js, err)
	}
	return v
}

// until waits, within d, for a JavaScript condition to hold in the page
// (checked on every animation frame, so no sleep decides the outcome).
func (tb *tab) until(what, cond string, d time.Duration) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, d+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+cond+")", chromedp.WithPollingTimeout(d))); err != nil {
		if errors.Is(err, chromedp.ErrPollingTimeout) {
			err = fmt.Errorf("not within %s", d)
		}
		tb.fail(what, err)
	}
}

// waitText waits until sel's text contains want.
func (tb *tab) waitText(sel, want string, d time.Duration) {
	tb.t.Helper()
	tb.until(fmt.Sprintf("%s shows %q", sel, want),
		fmt.Sprintf(`(document.querySelector(%s)?.textContent || '').includes(%s)`, strconv.Quote(sel), strconv.Quote(want)), d)
}

// path is the page's path relative to the portal.
func (tb *tab) path() string {
	return eval[string](tb, `location.pathname + location.search`)
}

// download clicks sel and returns the file the browser saved.
func (tb *tab) download(sel string) (string, []byte) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	progress := chromedp.BrowserEvents(ctx, cdpbrowser.DownloadProgress)
	begins := chromedp.BrowserEvents(ctx, cdpbrowser.DownloadWillBegin)
	tb.click(sel)
	name := ""
	for ev, err := range begins {
		if err != nil {
			tb.fail("download "+sel, err)
		}
		name = ev.SuggestedFilename
		break
	}
	for ev, err := range progress {
		if err != nil {
			tb.fail("download "+sel, err)
		}
		if ev.State == cdpbrowser.DownloadProgressStateCompleted {
			b, err := os.ReadFile(filepath.Join(tb.downloads, name))
			if err != nil {
				tb.fail("read download", err)
			}
			return name, b
		}
		if ev.State == cdpbrowser.DownloadProgressStateCanceled {
			tb.fail("download "+sel, errors.New("canceled"))
		}
	}
	return "", nil
}

// screenshot writes the whole page to <portal.screenshots>/<name>.png when
// set; shot writes the top height pixels (the window made that tall).
func (tb *tab) screenshot(name string) { tb.shot(name, 0) }

func (tb *tab) shot(name string, height int64) {
	tb.t.Helper()
	if *screenshots == "" {
		return
	}
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	capture := chromedp.FullScreenshot(100)
	if height > 0 {
		tb.do("size window", chromedp.EmulateViewport(1366, height))
		defer tb.do("reset window", chromedp.EmulateReset())
		capture = chromedp.CaptureScreenshot()
	}
	b, err := chromedp.Run(ctx, capture)
	if err != nil {
		tb.fail("screenshot "+name, err)
	}
	if err := os.MkdirAll(*screenshots, 0o755); err != nil {
		tb.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(*screenshots, name+".png"), b, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// a11yProblems lists what assistive technology would miss on the page: form
// controls without a label, buttons and links without a name, images
// without alt text, empty table headers, and a page wider than the window (it must fit a laptop
// screen; wide tables scroll inside their own box).
const a11yProblems = `(() => {
  const out = [];
  const named = (el) => (el.getAttribute('aria-label') || '').trim() || el.getAttribute('aria-labelledby') ||
    (el.labels && [...el.labels].some((l) => l.textContent.trim()));
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    if (!named(el)) out.push('unlabelled ' + el.tagName.toLowerCase() + '#' + el.id);
  }
  for (const el of document.querySelectorAll('button, a[href], [role=tab]')) {
    if (el.closest('[hidden]')) continue;
    if (!el.textContent.trim() && !named(el)) out.push('nameless ' + el.tagName.toLowerCase() + ' ' + el.outerHTML.slice(0, 80));
  }
  for (const el of document.querySelectorAll('img:not([alt])')) out.push('img without alt ' + el.src);
  for (const el of document.querySelectorAll('th')) if (!el.textContent.trim()) out.push('empty header cell in ' + (el.closest('table')?.id || 'a table'));
  if (document.documentElement.scrollWidth > window.innerWidth + 1) {
    out.push('page is ' + document.documentElement.scrollWidth + 'px wide in a ' + window.innerWidth + 'px window');
  }
  if (!document.querySelector('h1')) out.push('no h1');
  return out;
})()`

// checkA11y fails the test for every a11yProblems finding on the current page.
func (tb *tab) checkA11y(page string) {
	tb.t.Helper()
	for _, p := range eval[[]string](tb, a11yProblems) {
		tb.t.Errorf("%s: %s: %s", tb.name, page, p)
	}
}

// atWidth runs fn with the window emulating a screen width px wide.
func (tb *tab) atWidth(px int64, fn func()) {
	tb.t.Helper()
	tb.do("emulate width", chromedp.EmulateViewport(px, 800))
	defer tb.do("reset emulation", chromedp.EmulateReset())
	fn()
}
