// Command api serves the EGS v1 REST API and translates it into NATS
// request/reply to the platform's services.
package main

import (
	"context"
	"flag"
	"io"

	"github.com/open-egs/egs/libs/svcmain"
	"github.com/open-egs/egs/services/api/service"
)

func main() { svcmain.Main(spec()) }

// spec describes the binary: its flags (environment fallback EGS_API_*) and
// how the service runs.
func spec() svcmain.Spec {
	var cfg service.Config
	return svcmain.Spec{
		Name: service.Name, EnvPrefix: "EGS_API",
		Register: func(fs *flag.FlagSet) func() error {
			cfg.RegisterFlags(fs)
			return func() error { return cfg.Validate() } // after parsing: a method value would copy cfg now
		},
		Run: func(ctx context.Context, env svcmain.Env) error {
			return service.Run(ctx, service.Deps{Config: cfg, NATS: env.NATS, Log: env.Log})
		},
	}
}

// run is main without the process, for tests.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	return svcmain.Run(ctx, spec(), args, getenv, io.Discard, stderr)
}
