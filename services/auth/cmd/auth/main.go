// Command auth runs the auth service: API keys (stored hashed), the exchange
// of a key for a signed access token, and the JWKS that verifies tokens.
package main

import (
	"context"
	"flag"
	"io"

	"github.com/open-egs/egs/libs/svcmain"
	"github.com/open-egs/egs/services/auth/service"
)

func main() { svcmain.Main(spec()) }

// spec describes the binary: its flags (environment fallback EGS_AUTH_*) and
// how the service runs.
func spec() svcmain.Spec {
	var cfg service.Config
	return svcmain.Spec{
		Name: service.Name, EnvPrefix: "EGS_AUTH",
		Register: func(fs *flag.FlagSet) func() error {
			cfg.RegisterFlags(fs)
			return func() error { return cfg.Validate() } // after parsing: a method value would copy cfg now
		},
		Run: func(ctx context.Context, env svcmain.Env) error {
			return service.Run(ctx, service.Deps{Config: cfg, NATS: env.NATS, Log: env.Log, Stdout: env.Stdout})
		},
	}
}

// run is main without the process, for tests.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return svcmain.Run(ctx, spec(), args, getenv, stdout, stderr)
}
