// Command fleetsim runs many simulated kiosks against a hub (the real agent sync code over
// in-memory outboxes) and reports throughput, latency, connect and drain times; `fleetsim mqtt`
// offers the same payloads as plain MQTT load to any broker, to measure a reference broker;
// `fleetsim viewers` follows the hub's change notices as live console viewers and measures their lag.
package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/fleetsim"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/flagconf"
	"github.com/kioskfleet/kioskfleet/pkg/logging"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fleetsim:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) > 0 && args[0] == "mqtt" {
		return runMQTT(ctx, args[1:])
	}
	if len(args) > 0 && args[0] == "viewers" {
		return runViewers(ctx, args[1:])
	}
	fs := flag.NewFlagSet("fleetsim", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: fleetsim [flags]            simulated kiosks against a hub
       fleetsim mqtt [flags]       plain MQTT QoS1 fan-in load against any broker
       fleetsim viewers [flags]    live console viewers of the hub's change notices

Enrolls (once; identities are cached in --state) and runs --agents simulated kiosks, each with the
real agent sync code over an in-memory outbox, offering --rate records/s of --size bytes each for
--duration, then waits until everything is acked. Prints a summary and writes JSON (--json).

Flags:
`)
		fs.PrintDefaults()
	}
	var cfg fleetsim.Config
	fs.StringVar(&cfg.HubURL, "hub", "https://127.0.0.1:8080", "hub URL")
	caFile := fs.String("ca", os.Getenv("KF_CA"), "the hub's CA certificate to trust, e.g. var/hub/ca/ca.crt (env KF_CA; default: the system's roots)")
	fs.StringVar(&cfg.Token, "token", os.Getenv("KF_TOKEN"), "admin token (env KF_TOKEN)")
	mqttAddrs := fs.String("mqtt", "", "override the hub's advertised MQTT addresses (comma-separated: each kiosk starts at a random one and fails over between them)")
	fs.StringVar(&cfg.StateDir, "state", "var/fleetsim", "folder for cached kiosk identities")
	fs.IntVar(&cfg.Agents, "agents", 100, "simulated kiosks")
	fs.Float64Var(&cfg.Rate, "rate", 10, "records per second per kiosk")
	fs.IntVar(&cfg.Size, "size", 200, "record body bytes")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", 0, "heartbeat interval per kiosk (0: none)")
	fs.DurationVar(&cfg.Duration, "duration", 20*time.Second, "load duration after all kiosks connected")
	fs.IntVar(&cfg.Prefill, "prefill", 0, "records buffered per kiosk before connecting (drain)")
	fs.StringVar(&cfg.FanOut, "fanout", "", "halfway through the load, write a command for every kiosk through the hub (replica) at this URL and measure until each arrives")
	fs.IntVar(&cfg.BatchRecords, "batch", 0, "records per batch (0: agent default)")
	fs.IntVar(&cfg.MaxInflight, "inflight", 0, "unacked batches per kiosk (0: agent default)")
	fs.IntVar(&cfg.ConnectConcurrency, "connect-concurrency", 64, "enrollments and first connects at once")
	fs.Float64Var(&cfg.Churn, "churn", 0, "connections cut per second, fleet-wide, during the load (each kiosk reconnects and resyncs)")
	fs.Float64Var(&cfg.OfflineFraction, "offline-fraction", 0, "share of kiosks (0..1) that lose the network once during the load, for --offline-for, buffering meanwhile")
	fs.DurationVar(&cfg.OfflineFor, "offline-for", 0, "how long each offline kiosk stays off the network")
	fs.BoolVar(&cfg.TakeBundles, "take-bundles", false, "each kiosk takes the apps its desired state names (rollouts), as an agent: the hub's update repository verified with the agent's TUF client, each target downloaded and checked (not kept), then reported active or failed")
	fs.StringVar(&cfg.FailVersion, "fail-version", "", "with --fail-rate: only this version fails (default: any)")
	fs.Float64Var(&cfg.FailRate, "fail-rate", 0, "with --take-bundles: share of kiosks (0..1) whose new app fails its health check (reported failed)")
	stormFile := fs.String("storm-signal", "", "reconnect storm: once all kiosks are connected, create this file (\"connected\") and wait for the hub to be restarted (by whoever watches the file); report the time until all resynced, and add \"resynced\" to the file then")
	jsonOut := fs.String("json", "", "write the result as JSON to this file")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the simulator to this file")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg.MQTTAddrs = flagconf.List(*mqttAddrs)
	err := cfg.Validate()
	if cfg.Token == "" {
		err = errors.Join(errors.New("token: required (--token or KF_TOKEN)"), err)
	}
	if cfg.Size < 16 {
		err = errors.Join(err, fmt.Errorf("size: %d: want at least 16 bytes", cfg.Size))
	}
	if cfg.HubCA, cfg.Log, err = setup(err, *caFile, *logLevel); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *stormFile != "" {
		cfg.Storm = func() {
			_ = os.WriteFile(*stormFile, []byte("connected\n"), 0o644)
			fmt.Println("fleetsim: all connected; waiting for the hub to restart")
		}
		// After the storm, the load window: say so first, so that what watches the storm (live
		// viewers) can stop while the kiosks are still connected.
		window := cfg.Duration
		cfg.During = func(ctx context.Context, _ *fleetsim.Fleet) {
			if f, err := os.OpenFile(*stormFile, os.O_APPEND|os.O_WRONLY, 0); err == nil {
				_, _ = f.WriteString("resynced\n")
				_ = f.Close()
			}
			t := time.NewTimer(window)
			defer t.Stop()
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
	}
	res, err := fleetsim.Run(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Printf(`fleetsim: %d kiosks (%d connected in %.1fs), %.0f rec/s each of %d B for %.1fs
  appended %d, acked %d, unacked at end %d, sessions %d
  acked throughput %.0f records/s; latency enqueue->ack p50 %.1f ms, p99 %.1f ms, max %.1f ms
  drain after load %.2fs; heartbeat p99 %.1f ms
`, res.Agents, res.Connected, res.ConnectSeconds, cfg.Rate, cfg.Size, res.LoadSeconds, res.Appended, res.Acked, res.Unacked,
		res.Sessions, res.AckedPerSecond, res.LatencyP50Ms, res.LatencyP99Ms, res.LatencyMaxMs, res.DrainSeconds, res.HeartbeatP99Ms)
	if cfg.Churn > 0 || cfg.OfflineFraction > 0 {
		fmt.Printf("  churn: %d connections cut; offline: %d kiosks for %s each; most buffered by one kiosk %d\n",
			res.Cuts, res.OfflineKiosks, cfg.OfflineFor, res.MaxBuffered)
	}
	if cfg.Storm != nil {
		fmt.Printf("  reconnect storm: %d of %d resynced in %.1fs; sessions per agent meanwhile at most %d (%d agents over 2)\n",
			res.StormResynced, res.Agents, res.StormSeconds, res.StormMaxSessions, res.StormOverTwo)
	}
	fmt.Printf("  sessions ended by \"bad record MAC\": %d; deaf sessions ended: %d\n", res.MACErrors, res.DeafSessions)
	if cfg.FanOut != "" {
		fmt.Printf("  fan-out through %s: %d of %d commands arrived; p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
			cfg.FanOut, res.FanOutArrived, res.FanOutCommands, res.FanOutP50Ms, res.FanOutP99Ms, res.FanOutMaxMs)
	}
	if cfg.TakeBundles {
		fmt.Printf("  bundles: %d taken, %d failed (as asked), %d refused; %d bytes fetched\n",
			res.BundlesActive, res.BundlesFailed, res.BundlesRefused, res.BundleBytes)
	}
	return writeJSON(*jsonOut, res)
}

func runMQTT(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fleetsim mqtt", flag.ContinueOnError)
	var cfg fleetsim.MQTTConfig
	fs.StringVar(&cfg.Broker, "broker", "127.0.0.1:1883", "broker host:port (plain TCP)")
	fs.IntVar(&cfg.Clients, "clients", 100, "publishing clients")
	fs.IntVar(&cfg.BatchRecords, "batch", 100, "records per message")
	fs.IntVar(&cfg.Size, "size", 200, "record body bytes")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "load duration")
	jsonOut := fs.String("json", "", "write the result as JSON to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	res, err := fleetsim.RunMQTT(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Printf("fleetsim mqtt: %d clients -> %s: %d messages acked, %d delivered, %.0f records/s over %.1fs\n",
		res.Clients, cfg.Broker, res.Published, res.Received, res.RecordsPerSecond, res.Seconds)
	return writeJSON(*jsonOut, res)
}

func runViewers(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fleetsim viewers", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: fleetsim viewers [flags]

Runs --viewers live viewers of the hub's change notices (GET /api/v1/feed, as the console's live
pages follow it), each on a connection of its own, reopening its stream when it ends or breaks,
until --duration passes or SIGINT/SIGTERM. For every notice it records the lag from the hub's time
of the change to its arrival (run it on the hub's machine: one clock). At the end it reads every
kiosk's presence from the hub and reports how long after the storm's last presence change each
viewer had all of it. Prints a summary and writes JSON (--json).

Flags:
`)
		fs.PrintDefaults()
	}
	var cfg fleetsim.ViewersConfig
	fs.StringVar(&cfg.HubURL, "hub", "https://127.0.0.1:8080", "hub URL")
	caFile := fs.String("ca", os.Getenv("KF_CA"), "the hub's CA certificate to trust (env KF_CA; default: the system's roots)")
	fs.StringVar(&cfg.Token, "token", os.Getenv("KF_TOKEN"), "staff or admin bearer token (env KF_TOKEN)")
	fs.IntVar(&cfg.Viewers, "viewers", 100, "live viewers, each with a stream and a connection of its own")
	fs.DurationVar(&cfg.MinBackoff, "min-backoff", 100*time.Millisecond, "first wait after a failed attempt to open a stream")
	fs.DurationVar(&cfg.MaxBackoff, "max-backoff", time.Second, "longest wait between attempts (the backoff doubles up to it)")
	duration := fs.Duration("duration", 0, "how long to watch (0: until SIGINT or SIGTERM)")
	ready := fs.String("ready", "", "create this file once the hub has opened every viewer's stream")
	jsonOut := fs.String("json", "", "write the result as JSON to this file")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	err := cfg.Validate()
	if *duration < 0 {
		err = errors.Join(err, fmt.Errorf("duration: %s: want 0 or more", *duration))
	}
	if cfg.HubCA, cfg.Log, err = setup(err, *caFile, *logLevel); err != nil {
		return err
	}
	log := cfg.Log
	if *ready != "" {
		cfg.Subscribed = func() {
			if err := os.WriteFile(*ready, []byte("subscribed\n"), 0o644); err != nil {
				log.Error("ready file not written", "err", err)
			}
		}
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	res, err := fleetsim.RunViewers(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Printf(`fleetsim viewers: %d viewers (%d subscribed) for %.1fs: %d notices (%d resyncs); lag p50 %.1f ms, p99 %.1f ms, max %.1f ms
  streams: %d reopened, %d broken, %d attempts refused (no hub), %d errors
  after the hub was lost: %d notices; lag p50 %.1f ms, p99 %.1f ms, max %.1f ms
  up to date with the %d kiosks whose presence changed: p50 %.1f ms, max %.1f ms after the last change; %d viewers not by the end
`, res.Viewers, res.Subscribed, res.Seconds, res.Updates, res.Resyncs, res.LagP50Ms, res.LagP99Ms, res.LagMaxMs,
		res.Reconnects, res.Broken, res.Refused, res.Errors,
		res.StormUpdates, res.StormLagP50Ms, res.StormLagP99Ms, res.StormLagMaxMs,
		res.StormKiosks, res.UpToDateP50Ms, res.UpToDateMaxMs, res.NotUpToDate)
	return writeJSON(*jsonOut, res)
}

// setup loads the hub's CA from caFile (none: the system's roots) and makes the logger, once the
// flags are valid: flagErr and a CA that cannot be read are reported together.
func setup(flagErr error, caFile, logLevel string) (*x509.CertPool, *slog.Logger, error) {
	var roots *x509.CertPool
	if caFile != "" {
		var err error
		if roots, err = api.LoadCA(caFile); err != nil {
			flagErr = errors.Join(flagErr, fmt.Errorf("ca: %w", err))
		}
	}
	if flagErr != nil {
		return nil, nil, fmt.Errorf("invalid flags:\n%w", flagErr)
	}
	log, err := logging.New(os.Stderr, logLevel, "text")
	return roots, log, err
}

func writeJSON(path string, v any) error {
	if path == "" {
		return nil
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	return os.WriteFile(path, b, 0o644)
}
