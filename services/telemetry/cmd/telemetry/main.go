// Command telemetry runs the telemetry service: GPU sample ingest, latest state,
// rollups, idle and threshold detection, and /metrics under dcgm-exporter names.
package main

import (
	"context"
	"flag"

	"github.com/open-egs/egs/libs/svcmain"
	"github.com/open-egs/egs/services/telemetry/service"
)

func main() { svcmain.Main(spec()) }

// spec describes the binary: its flags (environment fallback EGS_TELEMETRY_*) and
// how the service runs.
func spec() svcmain.Spec {
	var cfg service.Config
	return svcmain.Spec{
		Name: service.Name, EnvPrefix: "EGS_TELEMETRY",
		Register: func(fs *flag.FlagSet) func() error {
			cfg.RegisterFlags(fs)
			return func() error { return cfg.Validate() } // after parsing: a method value would copy cfg now
		},
		Run: func(ctx context.Context, env svcmain.Env) error {
			return service.Run(ctx, service.Deps{Config: cfg, NATS: env.NATS, Log: env.Log})
		},
	}
}
