// Command kiosk-agent runs on each self-service kiosk: it enrolls with the hub once, then keeps the
// kiosk's records flowing to the hub (durably, through network loss and restarts) and carries out
// the hub's commands and desired state.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/bundles"
	"github.com/kioskfleet/kioskfleet/agent/daemon"
	"github.com/kioskfleet/kioskfleet/agent/enroll"
	"github.com/kioskfleet/kioskfleet/drivers/profile"
	"github.com/kioskfleet/kioskfleet/pkg/flagconf"
	"github.com/kioskfleet/kioskfleet/pkg/logging"
)

var version = "dev"

const usage = `Usage: kiosk-agent <command> [flags]

Commands:
  enroll   --hub URL --token TOKEN   enroll this kiosk with the hub (once); the device key is
                                     generated here and never leaves the kiosk; the token pins
                                     the hub's CA, checked before the token is sent; --hub takes
                                     a comma-separated list for a hub of several replicas
  run                                run the agent
  launch [--health-timeout 2m] -- [run flags]
                                     run the agent under the launcher (what the service manager
                                     starts): it switches to an agent version the hub rolled out
                                     at restart, and falls back to the previous binary when the
                                     new one does not come up healthy
  devices discover                   list the serial ports and USB devices attached to this
                                     machine and the firmware profile that fits each
  profiles validate [DIR|FILE...]    check firmware profiles; reports every problem with file and
                                     line (default DIR: firmware-profiles)
  version                            print the version

Run 'kiosk-agent <command> --help' for a command's flags. Flags can also be set in the
environment (KF_AGENT_<FLAG>) or in a YAML file given with --config; flags win over environment,
environment over file.
`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "kiosk-agent:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	switch args[0] {
	case "enroll":
		return enrollCmd(args[1:], stdout, stderr)
	case "run":
		return runCmd(args[1:], stderr)
	case "launch":
		return launchCmd(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, version)
		return nil
	case "profiles":
		return profilesCmd(args[1:], stdout)
	case "devices":
		return devicesCmd(args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func common(fs *flag.FlagSet) (cfgFile, dataDir *string) {
	return fs.String("config", "", "YAML config file"),
		fs.String("data", "var/agent", "data folder (identity, outbox, state)")
}

func parse(fs *flag.FlagSet, args []string, cfgFile *string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return flagconf.Apply(fs, "KF_AGENT_", *cfgFile)
}

func enrollCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kiosk-agent enroll", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgFile, dataDir := common(fs)
	hub := fs.String("hub", "", "hub URL, e.g. https://hub.example.gov.cn:8080 (http:// only to a hub on this machine's loopback); for a hub of several replicas a comma-separated list (tried in turn, and kept: the agent fails over between them)")
	token := fs.String("token", "", "one-time enrollment token as fleetctl tokens create prints it, kfe_<secret>.<hub CA pin>: the hub is checked against the pin before the token is sent")
	model := fs.String("model", "", "kiosk model, for the inventory")
	mqtt := fs.String("mqtt", "", "override the MQTT addresses the hub advertises (comma-separated: the agent fails over between them)")
	if err := parse(fs, args, cfgFile); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var errs []error
	if *hub == "" {
		errs = append(errs, errors.New("--hub is required"))
	}
	if *token == "" {
		errs = append(errs, errors.New("--token is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := enroll.Enroll(ctx, flagconf.List(*hub), *token, *model, *dataDir, flagconf.List(*mqtt))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "enrolled as %s (MQTT %s); start with: kiosk-agent run --data %s\n", id.DeviceID, strings.Join(id.MQTTAddrs, ","), *dataDir)
	return nil
}

func runCmd(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("kiosk-agent run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgFile, dataDir := common(fs)
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json")
	maxBytes := fs.Int64("outbox-max-bytes", 256<<20, "outbox size cap in bytes")
	mqtt := fs.String("mqtt", "", "override the hub's MQTT addresses from enrollment (comma-separated: the agent starts at a random one and fails over between them)")
	ackTimeout := fs.Duration("ack-timeout", 10*time.Second, "resend from the first unacked record after this long without ack progress")
	maxBackoff := fs.Duration("max-backoff", 60*time.Second, "longest wait between reconnect attempts")
	devicesFile := fs.String("devices", "", "peripheral configuration file (e.g. written by 'devsim kiosk')")
	profilesDir := fs.String("profiles", "firmware-profiles", "folder of firmware profiles")
	rescan := fs.Duration("rescan", 5*time.Second, "with --devices: look this often for serial and USB devices attached after start that a profile fits, and use them (0: never)")
	synthetic := fs.Float64("synthetic-rate", 0, "append this many synthetic business records per second (load generator for tests and benchmarks)")
	localAPI := fs.String("local-api", "0", "with --devices: loopback host:port of the local device API for the kiosk shell and kiosk apps, e.g. 127.0.0.1:8090 (0: off)")
	metricsAddr := fs.String("metrics-addr", "0", "loopback host:port to serve Prometheus metrics on at /metrics (link, outbox, peripherals; nothing about citizens), e.g. 127.0.0.1:9101 (0: off)")
	appsAddr := fs.String("apps-addr", "0", "loopback host:port the installed kiosk apps are served on, each at http://APP.localhost:PORT, e.g. 127.0.0.1:8091 (0: off)")
	sessionFile := fs.String("session-file", "", "a citizen session is active while this file exists (for a kiosk shell that tells sessions so); apps are switched only between sessions")
	tufRoot := fs.String("tuf-root", "", "the update repository's root file (1.root.json from fleetctl keys init); default: fetched from the hub at first use and trusted from then on")
	if err := parse(fs, args, cfgFile); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var errs []error
	if err := daemon.CheckLocalAPI(*localAPI); err != nil {
		errs = append(errs, err)
	}
	if err := daemon.CheckLocalAPI(*appsAddr); err != nil {
		errs = append(errs, fmt.Errorf("--apps-addr: %w", err))
	}
	if err := daemon.CheckMetricsAddr(*metricsAddr); err != nil {
		errs = append(errs, err)
	}
	if !daemon.LocalAPIOff(*localAPI) && *devicesFile == "" {
		errs = append(errs, errors.New("--local-api needs --devices: the local device API serves the peripherals of the device configuration"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	log, err := logging.New(stderr, *logLevel, *logFormat)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var sessions bundles.SessionGuard
	if *sessionFile != "" {
		sessions = bundles.FileGuard{Path: *sessionFile}
	}
	a, err := daemon.Open(ctx, daemon.Config{Sessions: sessions, DataDir: *dataDir, Version: version, Log: log, OutboxMaxBytes: *maxBytes,
		MQTTOverride: flagconf.List(*mqtt), SyntheticRate: *synthetic, DevicesFile: *devicesFile, ProfilesDir: *profilesDir, Rescan: *rescan, AckTimeout: *ackTimeout, MaxBackoff: *maxBackoff,
		LocalAPI: *localAPI, AppsAddr: *appsAddr, MetricsAddr: *metricsAddr, TUFRoot: *tufRoot})
	if err != nil {
		return err
	}
	log.Info("kiosk agent starting", "device", a.DeviceID(), "version", version)
	err = a.Run(ctx)
	a.Close()
	if err != nil || !a.RestartRequested() || ctx.Err() != nil {
		return err
	}
	// The restart command: the same program, arguments and environment, in this process (a
	// supervisor sees no exit).
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	log.Info("kiosk agent restarting")
	return syscall.Exec(exe, os.Args, os.Environ())
}

// profilesCmd validates firmware profiles: a folder (all its *.yaml checked together, as the agent
// loads them) or single files (each checked alone).
func profilesCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "validate" {
		return errors.New("usage: kiosk-agent profiles validate [DIR|FILE...]")
	}
	targets := args[1:]
	if len(targets) == 0 {
		targets = []string{"firmware-profiles"}
	}
	var errs []error
	n := 0
	for _, t := range targets {
		fi, err := os.Stat(t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if fi.IsDir() {
			ps, err := profile.LoadDir(t)
			if err != nil {
				errs = append(errs, err)
			}
			n += len(ps)
			continue
		}
		if _, err := profile.LoadFile(t); err != nil {
			errs = append(errs, err)
		} else {
			n++
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid profiles:\n%w", err)
	}
	fmt.Fprintf(stdout, "%d profiles valid\n", n)
	return nil
}

// launchCmd runs the agent under the launcher (agent/bundles): "kiosk-agent launch -- run
// --data D ...". The launcher's folder is DATA/agent; the binary it falls back to while no
// version was installed through the hub is this one.
func launchCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kiosk-agent launch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgFile, dataDir := common(fs)
	healthTimeout := fs.Duration("health-timeout", 2*time.Minute, "how long a new agent version has to reach the hub before the launcher goes back to the previous one")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	var runArgs []string
	for i, a := range args {
		if a == "--" {
			args, runArgs = args[:i], args[i+1:]
			break
		}
	}
	if err := parse(fs, args, cfgFile); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log, err := logging.New(stderr, *logLevel, "text")
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	hasData := false
	for _, a := range runArgs {
		hasData = hasData || a == "--data" || strings.HasPrefix(a, "--data=")
	}
	if !hasData {
		runArgs = append(runArgs, "--data", *dataDir)
	}
	l, err := bundles.NewLauncher(bundles.LauncherConfig{Dir: filepath.Join(*dataDir, "agent"), Fallback: self,
		Args: append([]string{"run"}, runArgs...), HealthTimeout: *healthTimeout, Stdout: stdout, Stderr: stderr,
		Log: log.With("component", "launcher")})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return l.Run(ctx)
}
