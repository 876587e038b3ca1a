// Package fleetctl implements fleetctl, the command line field ops use to look after a kiosk fleet:
// devices and their health, sites, enrollment tokens, commands, desired state and records. It talks
// to the hub only over the HTTP API (docs/api.md) through pkg/api's Client.
//
// Exit codes: 0 success, 1 general failure, 2 usage (bad flags or arguments), 3 not found,
// 4 unauthorized or forbidden, 5 a command failed, expired or was not finished within --wait.
package fleetctl

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// Exit codes returned by Run.
const (
	ExitOK            = 0
	ExitError         = 1 // any other failure (network, hub error, degraded health)
	ExitUsage         = 2 // invalid flags, arguments or environment
	ExitNotFound      = 3 // the hub answered 404
	ExitUnauthorized  = 4 // the hub answered 401 or 403
	ExitCommandFailed = 5 // a command failed or expired, or --wait ran out first
)

// Defaults of the global flags.
const (
	DefaultHub     = "https://127.0.0.1:8080"
	DefaultTimeout = 15 * time.Second
)

// Env is what one run of fleetctl sees of the world besides its arguments.
type Env struct {
	Stdin          io.Reader           // for --doc @- ; nil: empty
	Stdout, Stderr io.Writer           // nil: discarded
	Getenv         func(string) string // nil: no environment
	Now            func() time.Time    // nil: time.Now
	Location       *time.Location      // times are shown in it, with their UTC offset; nil: time.Local (TZ)
	HTTP           *http.Client        // nil: a client of its own; --timeout applies per request; --ca's roots go to its *http.Transport
}

// usageError is a problem with the command line or environment: exit code 2.
type usageError struct{ problems []string }

func (e *usageError) Error() string {
	if len(e.problems) == 1 {
		return e.problems[0]
	}
	return "invalid flags:\n  " + strings.Join(e.problems, "\n  ")
}

func usagef(format string, a ...any) error { return &usageError{[]string{fmt.Sprintf(format, a...)}} }

// commandError says a command did not succeed: exit code 5.
type commandError struct{ msg string }

func (e *commandError) Error() string { return e.msg }

// Run runs fleetctl with args (without the program name) and returns the process exit code.
func Run(ctx context.Context, args []string, env Env) int {
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	if env.Location == nil {
		env.Location = time.Local
	}
	a := &app{env: env}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	code := exitCode(err)
	fmt.Fprintf(env.Stderr, "fleetctl: %s\n", describe(err))
	switch code {
	case ExitUsage:
		fmt.Fprintf(env.Stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	case ExitUnauthorized:
		if a.client != nil && a.client.Token == "" {
			fmt.Fprintln(env.Stderr, "fleetctl: no token given: use --token, --token-file, KF_TOKEN or KF_TOKEN_FILE")
		}
	}
	return code
}

// describe shows err with the hub's error, if any, as "code (HTTP status): message", followed by
// each invalid field the message does not already spell out (the hub's entries are
// "field: problem", and its message repeats them; bare field names are always listed).
func describe(err error) string {
	var ae *api.Error
	if !errors.As(err, &ae) {
		return err.Error()
	}
	d := fmt.Sprintf("%s (HTTP %d): %s", ae.Code, ae.Status, printable(ae.Message, false))
	for _, f := range ae.Fields {
		if !strings.Contains(f, ": ") || !strings.Contains(ae.Message, f) {
			d += "\n  invalid: " + printable(f, false)
		}
	}
	return strings.Replace(err.Error(), ae.Error(), d, 1)
}

func exitCode(err error) int {
	var ue *usageError
	var ce *commandError
	var ae *api.Error
	switch {
	case errors.As(err, &ue):
		return ExitUsage
	case errors.As(err, &ce):
		return ExitCommandFailed
	case errors.As(err, &ae):
		switch ae.Status {
		case http.StatusNotFound:
			return ExitNotFound
		case http.StatusUnauthorized, http.StatusForbidden:
			return ExitUnauthorized
		}
	}
	return ExitError
}

// app holds one run's flags and, once resolved, its client.
type app struct {
	env Env

	// Global flags as given.
	hub, token, tokenFile, ca, output, timeout string

	client  *api.Client
	json    bool
	perCall time.Duration
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "fleetctl",
		Short: "Look after a kiosk fleet through its hub",
		Long: `fleetctl is the command line for field ops: it lists kiosks and their health, shows one kiosk
in detail, creates sites and enrollment tokens, sends commands and follows them, sets desired
state and reads the records kiosks sent.

It talks to the hub's HTTP API. Every flag can be given after any command. The hub and token come
from flags, else from the environment, else defaults:

  --hub URL          KF_HUB         default ` + DefaultHub + `
  --token T          KF_TOKEN       a bearer token: the hub's bootstrap admin token or an access token
  --token-file F     KF_TOKEN_FILE  a file holding the token (safer than a flag: not in ps or history)
  --ca FILE          KF_CA          the hub's CA certificate (PEM) to trust for HTTPS, e.g. the hub's
                                    <data>/ca/ca.crt; default: the system's roots

Every command takes -o table (for people, the default) or -o json (the API's JSON, for
scripts). Times are shown in the local time zone (TZ) with their UTC offset. Errors go to stderr
with the hub's error code and message.

Nouns and verbs: devices list|show|revoke, sites list|create, tokens create, commands
list|show|send, state show|set, records list, clients list|show|create|delete,
staff create|update, departments list|create, apps list|show|create|versions|audit|submit|
approve|reject|publish|offer|delist|retire|transition, guides list|show|create|add-version|
upload-template, keys generate|init|sign-bundle|sign-agent|status, rollouts create|list|show|
devices|pause|resume|abort|rollback, devices tag, alerts list, silences list|create|end,
workorders list|create|close, security-events, health, login.

Exit codes: 0 ok, 1 failure, 2 usage, 3 not found, 4 unauthorized/forbidden,
5 command failed, expired or not done within --wait.`,
		Example: `  export KF_HUB=https://hub.example.gov.cn KF_TOKEN_FILE=~/.config/kf/token
  fleetctl devices list --status offline
  fleetctl devices show k-7c2a9e01b3d4f5a6
  fleetctl commands send k-7c2a9e01b3d4f5a6 print-test-page --args '{"printer":"receipt0"}' --wait 30s
  fleetctl records list k-7c2a9e01b3d4f5a6 --kind alert`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.hub, "hub", DefaultHub, "hub base URL (env KF_HUB)")
	pf.StringVar(&a.token, "token", "", "bearer token (env KF_TOKEN)")
	pf.StringVar(&a.tokenFile, "token-file", "", "file holding the bearer token (env KF_TOKEN_FILE)")
	pf.StringVar(&a.ca, "ca", "", "the hub's CA certificate (PEM) to trust (env KF_CA; default: the system's roots)")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	pf.StringVar(&a.timeout, "timeout", DefaultTimeout.String(), "time limit for each request to the hub")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{[]string{err.Error()}} })
	group(root)
	root.AddCommand(a.devicesCmd(), a.sitesCmd(), a.tokensCmd(), a.commandsCmd(), a.stateCmd(),
		a.recordsCmd(), a.healthCmd(), a.loginCmd(), a.clientsCmd(), a.staffCmd(), a.departmentsCmd(), a.appsCmd(), a.guidesCmd(), a.keysCmd(), a.rolloutsCmd(), a.bulkCmd())
	root.AddCommand(a.eventsCmd(), a.ratingsCmd(), a.securityEventsCmd(), a.alertsCmd(), a.silencesCmd(), a.workOrdersCmd())
	return root
}

// group makes cmd a command that only holds subcommands: run alone or with an unknown subcommand
// it is a usage error (cobra would print help and succeed).
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("unknown command %q for %q", args[0], c.CommandPath())
		}
		return nil
	}
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		return usagef("%q needs a subcommand: %s", c.CommandPath(), subNames(c))
	}
	return cmd
}

func subNames(c *cobra.Command) string {
	var n []string
	for _, s := range c.Commands() {
		if s.IsAvailableCommand() {
			n = append(n, s.Name())
		}
	}
	return strings.Join(n, ", ")
}

// args checks the number of positional arguments and names the missing ones.
func args(names ...string) cobra.PositionalArgs {
	return func(c *cobra.Command, a []string) error {
		if len(a) < len(names) {
			return usagef("missing %s", strings.Join(names[len(a):], ", "))
		}
		if len(a) > len(names) {
			return usagef("unexpected argument %q", a[len(names)])
		}
		return nil
	}
}

// setup resolves the global flags against the environment, adds their problems to p, and reports
// all of p's problems at once. Each command calls it after checking its own flags.
func (a *app) setup(c *cobra.Command, p *problems) error {
	get := a.env.Getenv
	hub, hubSrc := a.hub, "--hub"
	if v := get("KF_HUB"); v != "" && !c.Flag("hub").Changed {
		hub, hubSrc = v, "KF_HUB"
	}
	if u, err := url.Parse(hub); err != nil {
		p.add("%s %q: %v", hubSrc, hub, err)
	} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		p.add("%s %q: want http(s)://host[:port][/path]", hubSrc, hub)
	}

	switch a.output {
	case "table", "json":
	default:
		p.add("-o %q: want table or json", a.output)
	}
	a.json = a.output == "json"
	if a.perCall = p.duration("--timeout", a.timeout, time.Millisecond); a.perCall == 0 {
		a.perCall = DefaultTimeout
	}

	var token string
	tokenFile := func(src, file string) {
		if t, err := readToken(file); err != nil {
			p.add("%s: %v", src, err)
		} else {
			token = t
		}
	}
	switch flagTok, flagFile := c.Flag("token").Changed, c.Flag("token-file").Changed; {
	case flagTok && flagFile:
		p.add("--token and --token-file: give one, not both")
	case flagTok:
		token = a.token
	case flagFile:
		tokenFile("--token-file", a.tokenFile)
	case get("KF_TOKEN") != "":
		token = get("KF_TOKEN")
	case get("KF_TOKEN_FILE") != "":
		tokenFile("KF_TOKEN_FILE", get("KF_TOKEN_FILE"))
	}

	var roots *x509.CertPool
	caFile, caSrc := a.ca, "--ca"
	if v := get("KF_CA"); v != "" && !c.Flag("ca").Changed {
		caFile, caSrc = v, "KF_CA"
	}
	if caFile != "" {
		var err error
		if roots, err = api.LoadCA(caFile); err != nil {
			p.add("%s: %v", caSrc, err)
		}
	}

	if err := p.err(); err != nil {
		return err
	}
	hc := a.env.HTTP
	if hc == nil {
		hc = &http.Client{Transport: api.Transport(roots)}
	} else if t, ok := hc.Transport.(*http.Transport); ok && roots != nil {
		t.TLSClientConfig = api.Transport(roots).TLSClientConfig
	}
	a.client = &api.Client{BaseURL: strings.TrimRight(hub, "/"), Token: token, HTTP: hc}
	return nil
}

func readToken(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	t := strings.TrimSpace(string(b))
	if t == "" || strings.ContainsAny(t, " \t\r\n") {
		return "", fmt.Errorf("%s: want one token on one line", file)
	}
	return t, nil
}

// call returns a context for one request to the hub, limited by --timeout plus extra (for long
// polls).
func (a *app) call(c *cobra.Command, extra time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Context(), a.perCall+extra)
}

// callHub is the skeleton of every command that asks the hub one thing: it reports the problems
// of the command's own flags (already in p) and of the global ones at once, makes the call within
// --timeout, and prints the answer as the API's JSON (-o json) or for people with show. A failed
// call is reported as "what: the hub's error".
func callHub[T any](a *app, c *cobra.Command, p *problems, what string, call func(context.Context, *api.Client) (T, error), show func(T) error) error {
	if err := a.setup(c, p); err != nil {
		return err
	}
	ctx, cancel := a.call(c, 0)
	defer cancel()
	out, err := call(ctx, a.client)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if a.json {
		return a.emitJSON(out)
	}
	return show(out)
}

// emitJSON writes v indented, as the API sent it.
func (a *app) emitJSON(v any) error {
	e := json.NewEncoder(a.env.Stdout)
	e.SetEscapeHTML(false)
	e.SetIndent("", "  ")
	return e.Encode(v)
}

// loopbackHub reports whether the hub URL names this machine, which a kiosk cannot reach.
func (a *app) loopbackHub() bool {
	u, err := url.Parse(a.client.BaseURL)
	if err != nil {
		return false
	}
	return api.LoopbackHost(u.Hostname())
}
