// Command gpr-scheduler runs the GPR scheduler against a NATS server.
package main

import (
	"context"
	"flag"

	"github.com/open-egs/egs/libs/svcmain"
	"github.com/open-egs/egs/services/gpr-scheduler/service"
)

func main() { svcmain.Main(spec()) }

// spec describes the binary: its flags (environment fallback EGS_GPR_SCHEDULER_*) and
// how the service runs.
func spec() svcmain.Spec {
	var cfg service.Config
	return svcmain.Spec{
		Name: service.Name, EnvPrefix: "EGS_GPR_SCHEDULER",
		Register: func(fs *flag.FlagSet) func() error {
			cfg.RegisterFlags(fs)
			return func() error { return cfg.Validate() } // after parsing: a method value would copy cfg now
		},
		Run: func(ctx context.Context, env svcmain.Env) error {
			return service.Run(ctx, service.Deps{Config: cfg, NATS: env.NATS, Log: env.Log})
		},
	}
}
