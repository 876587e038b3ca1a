package fleetctl

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// logPoll is how often a followed log tail is read again.
const logPoll = time.Second

func (a *app) devicesLogsCmd() *cobra.Command {
	var forFlag, ttl string
	var follow, stop bool
	cmd := &cobra.Command{
		Use:   "logs ID [--for 5m] [-f] [--stop]",
		Short: "Show a kiosk's log tail; --for asks the kiosk to stream its log, -f follows it",
		Long: `Show the lines of the kiosk's recent log tails the hub holds (personal data redacted).

--for D asks the kiosk to stream its log for D (1s to 15m; the log-tail command, audited): an
offline kiosk starts when it comes back, if within --ttl. -f follows the lines as they come until
the tail ends (at its deadline, or when someone stops it with --stop) or you interrupt fleetctl.
Times are the kiosk's clock.`,
		Example: `  fleetctl devices logs k-7c2a9e01b3d4f5a6 --for 5m -f
  fleetctl devices logs k-7c2a9e01b3d4f5a6
  fleetctl devices logs k-7c2a9e01b3d4f5a6 --stop`,
		Args: args("ID"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			var tailArgs json.RawMessage
			var span time.Duration
			if forFlag != "" || stop {
				tailArgs, _ = json.Marshal(api.LogTailArgs{For: forFlag, Stop: stop})
				var err error
				if span, err = api.ParseLogTail(tailArgs); err != nil {
					p.add("--for %q: want a duration from 1s to %v, or --stop alone", forFlag, api.LogTailMax)
				}
			}
			p.duration("--ttl", ttl, time.Second)
			if err := a.setup(c, &p); err != nil {
				return err
			}
			id := argv[0]
			var req *fleet.Command
			if tailArgs != nil {
				ctx, cancel := a.call(c, 0)
				cmd, err := a.client.SendCommand(ctx, id, api.CreateCommand{Name: api.CmdLogTail, Args: tailArgs, TTL: ttl})
				cancel()
				if err != nil {
					return fmt.Errorf("ask %s for its log: %w", id, err)
				}
				if stop {
					fmt.Fprintf(a.env.Stderr, "log tail stop: command %s %s\n", cmd.ID, cmd.State)
					return nil
				}
				fmt.Fprintf(a.env.Stderr, "log tail requested: command %s %s, waits for the kiosk until %s\n", cmd.ID, cmd.State, a.stamp(cmd.ExpiresAt))
				req = &cmd
			}
			return a.tailLog(c, id, follow, req, span)
		},
	}
	f := cmd.Flags()
	f.StringVar(&forFlag, "for", "", "ask the kiosk to stream its log for this long (1s to 15m)")
	f.BoolVarP(&follow, "follow", "f", false, "follow the lines until the tail ends")
	f.BoolVar(&stop, "stop", false, "stop the kiosk's running tail")
	f.StringVar(&ttl, "ttl", api.LogTailTTL.String(), "with --for or --stop: how long the request waits for an offline kiosk")
	return cmd
}

// tailLog prints the lines the hub holds and, with follow, the ones that come, until the tail
// ends: the one req asked for, to run for span (nil: the one running now, if any).
func (a *app) tailLog(c *cobra.Command, id string, follow bool, req *fleet.Command, span time.Duration) error {
	var after uint64
	var dropped int64
	var giveUp time.Time // once the kiosk took the request: when its tail is over by far
	seen := false        // a running tail was seen
	for {
		ctx, cancel := a.call(c, 0)
		l, err := a.client.DeviceLog(ctx, id, after)
		if err == nil && req != nil && !req.State.Terminal() {
			var cmd fleet.Command
			if cmd, err = a.client.Command(ctx, req.ID, 0); err == nil {
				req = &cmd
			}
		}
		cancel()
		switch {
		case err != nil && c.Context().Err() != nil:
			return nil // interrupted
		case err != nil && transient(err) && follow:
			fmt.Fprintf(a.env.Stderr, "fleetctl: reading the log of %s: %s; retrying\n", id, describe(err))
		case err != nil:
			return fmt.Errorf("log of %s: %w", id, err)
		default:
			a.printLogLines(a.env.Stdout, l.Lines)
			after = l.Next
			if l.Dropped > dropped {
				fmt.Fprintf(a.env.Stderr, "fleetctl: %d lines skipped by the kiosk or the hub (rate and size bounds)\n", l.Dropped-dropped)
				dropped = l.Dropped
			}
			if req != nil && req.State == api.CommandSucceeded && giveUp.IsZero() {
				giveUp = time.Now().Add(span + 30*time.Second)
			}
			followed := seen
			seen = seen || l.Active
			switch {
			case !follow:
				return nil
			case req != nil && (req.State == api.CommandFailed || req.State == api.CommandExpired):
				return &commandError{fmt.Sprintf("log tail command %s %s: %s", req.ID, req.State, printable(req.Error, false))}
			case !l.Active && req == nil && !followed:
				fmt.Fprintf(a.env.Stderr, "no log tail of %s runs now: ask for one with --for\n", id)
				return nil
			case !l.Active && (req == nil || l.Tail == req.ID):
				fmt.Fprintf(a.env.Stderr, "log tail of %s ended\n", id)
				return nil
			case !giveUp.IsZero() && time.Now().After(giveUp):
				return fmt.Errorf("log of %s: the kiosk took command %s but its lines did not reach this hub", id, req.ID)
			}
		}
		if err := sleep(c.Context(), logPoll); err != nil {
			return nil // interrupted
		}
	}
}

func (a *app) printLogLines(w io.Writer, lines []api.LogLine) {
	for _, l := range lines {
		if a.json {
			b, _ := json.Marshal(l)
			fmt.Fprintf(w, "%s\n", b)
			continue
		}
		fmt.Fprintf(w, "%s %-5s %s\n", l.At.In(a.env.Location).Format("15:04:05.000"), l.Level, printable(l.Text, false))
	}
}
