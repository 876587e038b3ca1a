// Package flagconf layers configuration sources onto a flag.FlagSet with the project's precedence:
// command-line flags > environment > config file > defaults. A config file is YAML mapping flag
// names to values. Every problem (unknown key, bad value) is reported at once.
package flagconf

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// EnvName returns the environment variable for a flag: prefix + upper-case name with '-' as '_'
// ("KF_HUB_" + "http-addr" -> "KF_HUB_HTTP_ADDR").
func EnvName(prefix, flagName string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Apply fills every flag not given on the command line from the environment (envPrefix) and then
// from the YAML file at path (if path is not empty). fs must already be parsed.
func Apply(fs *flag.FlagSet, envPrefix, path string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	file := map[string]any{}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		if err := yaml.Unmarshal(b, &file); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
		keys := make([]string, 0, len(file))
		for k := range file {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if fs.Lookup(k) == nil {
				errs = append(errs, fmt.Errorf("config file %s: unknown key %q", path, k))
			}
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		env := EnvName(envPrefix, f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("environment %s=%q: %w", env, v, err))
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			s := fmt.Sprint(v)
			if err := fs.Set(f.Name, s); err != nil {
				errs = append(errs, fmt.Errorf("config file %s: %s: %q: %w", path, f.Name, s, err))
			}
		}
	})
	return errors.Join(errs...)
}

// List splits a comma-separated flag value (a list of addresses, say), dropping spaces and
// empty items.
func List(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
