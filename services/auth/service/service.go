// Package service wires the auth service: its configuration, its
// dependencies and Run, which declares the stream and bucket it owns, loads
// the signing key, makes sure a bootstrap Owner key exists, serves the
// egs.rpc.v1.auth.* methods and stops cleanly. It is public so that the
// standalone process can compose every service in one binary.
//
// Besides its own stream (EGS_AUTH) and bucket (EGS_APIKEYS), the service
// reads two things the workspace service owns and never declares them:
//   - the EGS_WORKSPACES bucket, read-only: an Editor or Viewer key is made
//     only for a workspace that exists, and exchanged only while it does;
//   - workspace deletions (egs.workspace.v1.*.deleted on EGS_WORKSPACE),
//     consumed with the durable consumer "auth-workspaces" once that stream
//     exists: every Editor and Viewer key of a deleted workspace is deleted,
//     each with its egs.auth.v1.apikey.<id>.deleted event.
//
// Failed deletions end, after their retries, on egs.dlq.v1.egs_workspace.auth-workspaces
// (stream EGS_DLQ, declared here as by every bus.Consume user).
package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/open-egs/egs/libs/bus"
	"github.com/open-egs/egs/libs/events"
	"github.com/open-egs/egs/libs/logkey"
	"github.com/open-egs/egs/libs/rpc"
	"github.com/open-egs/egs/services/auth/internal/apikey"
	"github.com/open-egs/egs/services/auth/internal/kvstore"
	"github.com/open-egs/egs/services/auth/internal/natsapi"
	"github.com/open-egs/egs/services/auth/internal/natspub"
	"github.com/open-egs/egs/services/auth/internal/oauth"
	"github.com/open-egs/egs/services/auth/internal/signing"
	"github.com/open-egs/egs/services/auth/internal/users"
)

// Name is the service's name: the micro service name and queue group.
const Name = "auth"

// Version is the version the micro service reports.
const Version = "0.1.0"

// Files the service keeps in Config.DataDir.
const (
	SigningKeyFileName    = "auth-signing-key.pem"
	RetiredKeysFileSuffix = ".retired.json" // beside the signing key: retired keys still in the JWKS
	BootstrapKeyFileName  = "bootstrap-api-key"
	HMACSecretFileName    = "oauth-hmac-secret"
)

// MinBootstrapKeyLen is the shortest accepted configured bootstrap secret.
const MinBootstrapKeyLen = 16

// Config is the configuration of the auth service.
type Config struct {
	// RPCTimeout bounds the handling of one request.
	RPCTimeout time.Duration
	// SigningKeyFile is an Ed25519 private key, PEM PKCS#8. If empty, the key
	// is DataDir/auth-signing-key.pem (created if missing), or, without a
	// DataDir, an ephemeral key.
	SigningKeyFile string
	// DataDir keeps the signing key and the generated bootstrap key.
	DataDir string
	// BootstrapAPIKey is the secret of the Owner key named "bootstrap". A
	// secret: never log it.
	BootstrapAPIKey string
	// RedisURL is the Redis of the OAuth2 issuer's state; "" disables the
	// issuer (users, logins and API keys work without it).
	RedisURL string
	// IssuerURL is the issuer's public base URL (the edge's address).
	IssuerURL string
	// EdgeSecret authenticates the edge when it tells the issuer who the
	// portal user of an authorization request is. A secret.
	EdgeSecret string
	// OAuthHTTPAddr, when set, serves the issuer on its own listener (auth
	// deployed apart from the edges, which proxy to it).
	OAuthHTTPAddr string
	// IdPConfig is the file of upstream OpenID providers for portal logins
	// (JSON, docs/auth.md); "" offers none. IdP logins need Redis.
	IdPConfig string
}

// RegisterFlags registers the service's flags on fs, with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.RPCTimeout, "rpc.timeout", 10*time.Second, "Deadline of one request/reply call.")
	fs.StringVar(&c.SigningKeyFile, "signing.key.file", "",
		"Ed25519 token signing key, PEM PKCS#8. Default: <data.dir>/"+SigningKeyFileName+
			" (created if missing), else an ephemeral key.")
	fs.StringVar(&c.DataDir, "data.dir", "", "Directory for the signing key and the generated bootstrap API key.")
	fs.StringVar(&c.BootstrapAPIKey, "bootstrap.api-key", "",
		"Secret of the bootstrap Owner API key. Default: generate one at first start and print it once.")
	fs.StringVar(&c.RedisURL, "redis.url", "", "Redis of the OAuth2 issuer (codes, refresh tokens, revocations); empty disables the issuer.")
	fs.StringVar(&c.IssuerURL, "oauth.issuer", "", "Public base URL of the OAuth2/OIDC issuer (the edges' address, with their path prefix).")
	fs.StringVar(&c.EdgeSecret, "oauth.edge-secret", "", "Shared secret by which the edges vouch for the portal user of an authorization request.")
	fs.StringVar(&c.IdPConfig, "idp.config", "", "Upstream OpenID providers for portal logins (JSON file); needs redis.url.")
	fs.StringVar(&c.OAuthHTTPAddr, "oauth.http-addr", "", "Serve the issuer on this address (when auth runs apart from the edges, which proxy to it).")
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.RPCTimeout <= 0 {
		errs = append(errs, errors.New("rpc.timeout must be positive"))
	}
	if k := c.BootstrapAPIKey; k != "" && (len(k) < MinBootstrapKeyLen || strings.ContainsAny(k, " \t\r\n")) {
		errs = append(errs, fmt.Errorf("bootstrap.api-key must be at least %d characters without white space",
			MinBootstrapKeyLen))
	}
	return errors.Join(errs...)
}

// Deps are what Run needs; the caller owns and closes NATS.
type Deps struct {
	Config Config
	NATS   *nats.Conn
	Log    *slog.Logger     // nil: discard
	Ready  func()           // called once when declared and serving; may be nil
	Stdout io.Writer        // where a generated bootstrap key is shown, once; nil: not shown
	Now    func() time.Time // the clock; nil: time.Now
	// Issuer, when set, receives the OAuth2/OIDC issuer's handler once it is
	// built (the standalone process mounts it on the edge); nil is fine.
	Issuer func(http.Handler)
}

// Run declares the auth stream (events.StreamAuth), the API keys bucket
// (events.BucketAPIKeys) and the dead-letter stream, loads the signing key,
// republishes the created events a crash may have lost, makes sure the
// bootstrap key exists, serves the RPC methods and consumes workspace
// deletions until ctx ends, then stops taking requests and returns nil. The
// workspace stream may appear after Run is ready: the consumer waits for it.
// A failure while starting is returned at once; a failure of the consumer
// stops the service and is returned.
func Run(ctx context.Context, d Deps) error {
	if err := d.Config.Validate(); err != nil {
		return fmt.Errorf("auth config: %w", err)
	}
	if d.NATS == nil {
		return errors.New("auth: no NATS connection")
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := d.Now
	if now == nil {
		now = time.Now
	}
	if d.Config.DataDir != "" {
		if err := os.MkdirAll(d.Config.DataDir, 0o700); err != nil {
			return fmt.Errorf("create data dir: %w", err)
		}
	}
	signer, err := loadKeyring(d.Config, log, now)
	if err != nil {
		return err
	}
	js, err := jetstream.New(d.NATS)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if _, err := bus.EnsureStream(ctx, js, natspub.Stream()); err != nil {
		return err
	}
	kv, err := bus.EnsureKV(ctx, js, kvstore.Bucket())
	if err != nil {
		return err
	}
	if err := bus.EnsureDeadLetterStream(ctx, js); err != nil {
		return err
	}
	usersKV, err := bus.EnsureKV(ctx, js, kvstore.UsersBucket())
	if err != nil {
		return err
	}
	codesKV, err := bus.EnsureKV(ctx, js, kvstore.CodesBucket())
	if err != nil {
		return err
	}
	workspaces := kvstore.NewWorkspaces(js)
	m := apikey.NewManager(kvstore.New(kv), workspaces, natspub.New(js), now)
	um := users.NewManager(kvstore.NewUsers(usersKV), kvstore.NewCodes(codesKV), workspaces, natspub.NewAudit(js), now)
	n, err := m.Recover(ctx)
	if err != nil {
		return fmt.Errorf("republish api key events: %w", err)
	}
	if n > 0 {
		log.Info("republished api key created events", "count", n)
	}
	if err := bootstrap(ctx, m, d, log); err != nil {
		return err
	}
	audit := natspub.NewAudit(js)
	issuer, clients, rdb, closeIssuer, err := startIssuer(ctx, d, js, signer, um, workspaces, audit, log, now)
	if err != nil {
		return err
	}
	defer closeIssuer()
	idps, err := loadIdP(d.Config, rdb, um, workspaces, now)
	if err != nil {
		return err
	}
	methods := natsapi.New(m, signer, now).Methods(log, d.Config.RPCTimeout)
	methods = append(methods, natsapi.NewUserHandlers(um, m, log).Methods(log, d.Config.RPCTimeout)...)
	methods = append(methods, natsapi.NewOAuthHandlers(clients, signer, audit, now).Methods(log, d.Config.RPCTimeout)...)
	methods = append(methods, natsapi.NewIdPHandlers(idps, um, log).Methods(log, d.Config.RPCTimeout)...)
	svc, err := rpc.Serve(d.NATS, Name, Version, methods...)
	if err != nil {
		return err
	}
	cctx, stopConsumer := context.WithCancel(ctx)
	defer stopConsumer()
	consumed := make(chan error, 1)
	go func() { consumed <- consumeWorkspaceDeletions(cctx, js, m, um, log) }()
	if issuer != nil && d.Issuer != nil {
		d.Issuer(issuer)
	}
	log.Info("auth service ready")
	if d.Ready != nil {
		d.Ready()
	}
	var cerr error
	stopped := false
	select {
	case <-ctx.Done():
	case cerr = <-consumed:
		stopped = true
	}
	// Stop drains the endpoints: requests in hand finish, no new ones arrive.
	serr := svc.Stop()
	if serr != nil {
		serr = fmt.Errorf("stop auth rpc: %w", serr)
	}
	stopConsumer()
	if !stopped {
		cerr = <-consumed // bus.Consume drains the message in hand
	}
	log.Info("auth service stopped")
	return errors.Join(cerr, serr)
}

// consumeWorkspaceDeletions waits for the workspace stream (the workspace
// service declares it), declares the durable consumer DurableWorkspaces on
// its deletions and handles them until ctx ends, when it returns nil. Until
// the consumer is declared, failures are logged and retried: meanwhile a
// deleted workspace's keys still fail to exchange.
func consumeWorkspaceDeletions(ctx context.Context, js jetstream.JetStream, m *apikey.Manager, um *users.Manager,
	log *slog.Logger) error {
	spec := bus.ConsumerSpec{Stream: events.StreamWorkspace, Durable: natsapi.DurableWorkspaces,
		FilterSubjects: []string{events.SubjectWorkspaceDeleted}}
	var cons jetstream.Consumer
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		_, err := js.Stream(ctx, events.StreamWorkspace)
		if err == nil {
			if cons, err = bus.EnsureConsumer(ctx, js, spec); err == nil {
				break
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			log.Warn("declare workspace deletions consumer; retrying", "durable", spec.Durable, logkey.Err, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	log.Info("consuming workspace deletions", "stream", spec.Stream, "durable", spec.Durable)
	return bus.Consume(ctx, js, cons, spec, natsapi.WorkspaceDeleted(m, log, um), log)
}

// loadKeyring loads the signing key and the keys it replaced (kept in the
// JWKS until the tokens they signed have expired).
func loadKeyring(cfg Config, log *slog.Logger, now func() time.Time) (*signing.Keyring, error) {
	var (
		s    *signing.Signer
		path string
		err  error
	)
	switch {
	case cfg.SigningKeyFile != "":
		path = cfg.SigningKeyFile
		s, err = signing.LoadFile(path)
	case cfg.DataDir != "":
		path = filepath.Join(cfg.DataDir, SigningKeyFileName)
		var created bool
		s, created, err = signing.LoadOrCreate(path)
		if created {
			log.Info("created token signing key", "path", path)
		}
	default:
		log.Warn("no signing.key.file or data.dir: using an ephemeral signing key; " +
			"tokens will not verify after a restart and replicas will not agree")
		s, err = signing.Generate()
	}
	if err != nil {
		return nil, err
	}
	retired := ""
	if path != "" {
		retired = path + RetiredKeysFileSuffix
	}
	return signing.NewKeyring(s, path, retired, oauth.MaxTokenTTL+5*time.Minute, now)
}

// bootstrap makes sure the bootstrap Owner key exists. A generated secret is
// written to DataDir and printed to Stdout, once; never to the log.
func bootstrap(ctx context.Context, m *apikey.Manager, d Deps, log *slog.Logger) error {
	secret, err := m.EnsureBootstrap(ctx, d.Config.BootstrapAPIKey)
	if err != nil {
		return err
	}
	if secret == "" {
		return nil
	}
	shown := false
	if d.Config.DataDir != "" {
		path := filepath.Join(d.Config.DataDir, BootstrapKeyFileName)
		if err := signing.WriteFile(path, []byte(secret+"\n")); err != nil {
			return fmt.Errorf("save bootstrap api key: %w", err)
		}
		log.Info("wrote the bootstrap Owner API key", "path", path)
		shown = true
	}
	if d.Stdout != nil {
		if _, err := fmt.Fprintf(d.Stdout, "EGS bootstrap Owner API key (shown once, keep it safe): %s\n", secret); err != nil {
			return fmt.Errorf("show bootstrap api key: %w", err)
		}
		shown = true
	}
	if !shown {
		log.Warn("generated a bootstrap Owner API key but had nowhere to show it; set bootstrap.api-key to replace it")
	} else {
		log.Info("generated the bootstrap Owner API key", "name", apikey.BootstrapName)
	}
	return nil
}
