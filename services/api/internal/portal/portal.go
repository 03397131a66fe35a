// Package portal serves the EGS web portal: plain HTML, CSS and JavaScript
// modules embedded in the binary with go:embed, so the edge needs no build
// step, no Node.js and no network access to serve it. Every page is the same
// index.html (a single-page application that routes on the client); files
// under /assets/ are served as they are.
//
// The portal talks only to the edge's own REST API (cookie session plus an
// X-CSRF-Token header for writes, see docs/portal.md) and the live event
// stream; its Content-Security-Policy forbids every other origin, so a page
// cannot load fonts, scripts or images from elsewhere even by mistake.
package portal

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is sent with every portal response: only the edge's
// own origin, no inline scripts, no frames.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

// baseMarker is the <base> element of index.html that Handler rewrites to
// carry the edge's path prefix.
const baseMarker = `<base href="/">`

// asset is one embedded file, ready to serve.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// Handler serves the portal. It is safe for concurrent use.
type Handler struct {
	index  asset
	assets map[string]asset // by path under /assets/, e.g. "/assets/js/app.js"
}

// New builds the handler. prefix is the path prefix the edge strips before
// routing ("" or e.g. "/egs"); the index page's <base href> carries it, so
// the relative URLs of assets, pages and API calls resolve under it.
func New(prefix string) (*Handler, error) {
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix != "" && !strings.HasPrefix(prefix, "/") {
		prefix = "/" + prefix
	}
	h := &Handler{assets: map[string]asset{}}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		rel := strings.TrimPrefix(p, "static")
		if rel == "/index.html" {
			if !bytes.Contains(b, []byte(baseMarker)) {
				return fmt.Errorf("index.html has no %s", baseMarker)
			}
			base := `<base href="` + html.EscapeString(prefix+"/") + `">`
			h.index = newAsset(bytes.Replace(b, []byte(baseMarker), []byte(base), 1), "text/html; charset=utf-8")
			return nil
		}
		h.assets[rel] = newAsset(b, contentType(rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("portal assets: %w", err)
	}
	if h.index.body == nil {
		return nil, fmt.Errorf("portal assets: no index.html")
	}
	return h, nil
}

func newAsset(b []byte, ctype string) asset {
	sum := sha256.Sum256(b)
	return asset{body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
}

// contentType is the media type of an asset by its extension; JavaScript
// modules must be served as text/javascript or browsers refuse them.
func contentType(p string) string {
	switch path.Ext(p) {
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".html":
		return "text/html; charset=utf-8"
	}
	if t := mime.TypeByExtension(path.Ext(p)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// IsAsset reports whether p names a file of the portal (as opposed to a page
// of the single-page application).
func IsAsset(p string) bool { return strings.HasPrefix(p, "/assets/") }

// Pages without sub-pages, and sections whose sub-paths are pages too (the
// client-side router's routes in static/assets/js/app.js), plus the assets.
var (
	exactPages   = []string{"/", "/login", "/observability"}
	sectionPages = []string{"/requests", "/workspaces", "/admin", "/assets"}
)

// Owns reports whether the portal serves path p (already normalised: no
// trailing or repeated slashes, prefix stripped). Any other path stays the
// API's, so an unknown path still gets the API's 404 envelope.
func Owns(p string) bool {
	for _, x := range exactPages {
		if p == x {
			return true
		}
	}
	for _, x := range sectionPages {
		if p == x || strings.HasPrefix(p, x+"/") {
			return true
		}
	}
	return false
}

// ServeHTTP answers GET and HEAD: a file under /assets/ (404 when there is
// none), or the index page for any other path (see Owns), which the
// client-side router turns into the page the path names. Other methods get
// 405.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	a, page := h.index, true
	if IsAsset(r.URL.Path) {
		var ok bool
		if a, ok = h.assets[r.URL.Path]; !ok {
			http.NotFound(w, r)
			return
		}
		page = false
	}
	hdr.Set("Content-Type", a.ctype)
	if page {
		// The page is small and carries no secret; never cache it, so a
		// new edge's assets (new ETags) are picked up at once.
		hdr.Set("Cache-Control", "no-store")
	} else {
		hdr.Set("Cache-Control", "no-cache") // revalidate with the ETag
		hdr.Set("ETag", a.etag)
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
