// Package config parses a service's flags with an environment fallback: a flag
// not given on the command line takes <PREFIX>_<FLAG> from the environment,
// the flag name upper-cased with dots and dashes as underscores
// (-nats.url ⇐ WORKSPACE_NATS_URL).
package config

import (
	"flag"
	"fmt"
	"strings"
)

// EnvName is the environment variable that backs flag name under prefix.
func EnvName(prefix, name string) string {
	r := strings.NewReplacer(".", "_", "-", "_")
	return strings.ToUpper(prefix + "_" + r.Replace(name))
}

// Parse parses args into fs, then fills every flag not set on the command line
// from getenv. The first bad value is returned, naming the variable.
func Parse(fs *flag.FlagSet, prefix string, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		env := EnvName(prefix, f.Name)
		if v := getenv(env); v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s: %w", env, serr)
			}
		}
	})
	return err
}
