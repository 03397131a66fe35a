package service

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/services/auth/internal/idp"
	"github.com/open-egs/egs/services/auth/internal/kvstore"
	"github.com/open-egs/egs/services/auth/internal/natspub"
	"github.com/open-egs/egs/services/auth/internal/oauth"
	"github.com/open-egs/egs/services/auth/internal/signing"
	"github.com/open-egs/egs/services/auth/internal/users"
)

// loadIdP reads the upstream providers; nil without a configuration.
func loadIdP(cfg Config, rdb *redis.Client, um *users.Manager, ws users.Workspaces, now func() time.Time) (*idp.Manager, error) {
	if cfg.IdPConfig == "" {
		return nil, nil
	}
	if rdb == nil {
		return nil, errors.New("idp.config needs redis.url")
	}
	c, err := idp.Load(cfg.IdPConfig)
	if err != nil {
		return nil, err
	}
	if c.RedirectURL == "" {
		c.RedirectURL = strings.TrimSuffix(cfg.IssuerURL, "/") + "/login/idp/callback"
	}
	return idp.NewManager(c, rdb, um, ws, now), nil
}

// startIssuer builds the OAuth2/OIDC issuer when Redis is configured: the
// clients bucket, the Redis storage, the HMAC secret and, with
// OAuthHTTPAddr, its own HTTP listener. Without Redis it returns a nil
// handler and nil clients. The returned func releases what it opened.
func startIssuer(ctx context.Context, d Deps, js jetstream.JetStream, keys *signing.Keyring, um *users.Manager,
	ws users.Workspaces, audit *natspub.Audit, log *slog.Logger, now func() time.Time) (http.Handler, *oauth.Clients,
	*redis.Client, func(), error) {
	noop := func() {}
	if d.Config.RedisURL == "" {
		log.Info("no redis.url: the OAuth2/OIDC issuer is off")
		return nil, nil, nil, noop, nil
	}
	ckv, err := bus.EnsureKV(ctx, js, kvstore.ClientsBucket())
	if err != nil {
		return nil, nil, nil, noop, err
	}
	clientStore := kvstore.NewClients(ckv)
	if err := clientStore.Watch(ctx, log); err != nil {
		return nil, nil, nil, noop, err
	}
	clients := oauth.NewClients(clientStore, ws, audit, now)
	opt, err := redis.ParseURL(d.Config.RedisURL)
	if err != nil {
		return nil, nil, nil, noop, fmt.Errorf("redis.url: %w", err)
	}
	rdb := redis.NewClient(opt)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, nil, nil, noop, fmt.Errorf("redis: %w", err)
	}
	secret, err := hmacSecret(d.Config, log)
	if err != nil {
		_ = rdb.Close()
		return nil, nil, nil, noop, err
	}
	revoked := func(ctx context.Context, jti, subject string, until time.Time) {
		if !events.ValidToken(jti) {
			return
		}
		err := audit.Publish(ctx, events.AuthFamilyOAuth, jti, events.AuthRevoked, "at."+jti+".revoked",
			events.AuthAudit{Action: "oauth.revoked", User: subject, Target: jti, Until: until, At: now().UTC()})
		if err != nil {
			log.ErrorContext(ctx, "publish access token revocation", logkey.Err, err)
		}
	}
	store := oauth.NewStore(rdb, clientStore, oauth.CodeTTL, oauth.AccessTokenTTL, oauth.RefreshTokenTTL, revoked)
	issuerURL := d.Config.IssuerURL
	if issuerURL == "" {
		issuerURL = "http://localhost:8080"
		log.Warn("no oauth.issuer: the issuer calls itself " + issuerURL)
	}
	iss, err := oauth.NewIssuer(oauth.Config{IssuerURL: issuerURL, HMACSecret: secret, EdgeSecret: d.Config.EdgeSecret},
		store, keys, um, clientStore, audit, log, now)
	if err != nil {
		_ = rdb.Close()
		return nil, nil, nil, noop, err
	}
	h := iss.Handler()
	closers := []func(){func() { _ = rdb.Close() }}
	if d.Config.OAuthHTTPAddr != "" {
		ln, err := net.Listen("tcp", d.Config.OAuthHTTPAddr)
		if err != nil {
			_ = rdb.Close()
			return nil, nil, nil, noop, fmt.Errorf("listen %s: %w", d.Config.OAuthHTTPAddr, err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				log.Error("oauth2 issuer http", logkey.Err, err)
			}
		}()
		log.Info("oauth2 issuer serving", "addr", ln.Addr().String(), "issuer", issuerURL)
		closers = append([]func(){func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}}, closers...)
	}
	return h, clients, rdb, func() {
		for _, c := range closers {
			c()
		}
	}, nil
}

// hmacSecret loads (or creates, 32 random bytes, mode 0600) the secret that
// signs authorization codes and refresh tokens, in the data directory;
// without one, an ephemeral secret (refresh tokens die with the process).
func hmacSecret(cfg Config, log *slog.Logger) ([]byte, error) {
	fresh := make([]byte, 32)
	_, _ = rand.Read(fresh)
	if cfg.DataDir == "" {
		log.Warn("no data.dir: ephemeral OAuth2 HMAC secret; refresh tokens will not survive a restart")
		return fresh, nil
	}
	path := filepath.Join(cfg.DataDir, HMACSecretFileName)
	b, err := os.ReadFile(path)
	if err == nil && len(b) >= 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if err := signing.CreateFile(path, fresh); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return os.ReadFile(path)
		}
		return nil, err
	}
	return fresh, nil
}
