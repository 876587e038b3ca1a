package fleetctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// maxPoll is the longest wait one long-poll request asks the hub for (docs/api.md allows 60s).
// It is kept short so that a hub that holds a poll until the command is terminal, rather than
// until it changes, still shows the intermediate states.
const maxPoll = 5 * time.Second

// minPollGap spaces polls that the hub answered at once without a change, so that a hub that does
// not hold long polls is not hammered.
const minPollGap = 250 * time.Millisecond

// retryGap spaces polls after a transient failure (hub restarting, network down).
const retryGap = time.Second

// transient reports whether a failed poll is worth repeating: the hub could not be reached or
// answered with a server error.
func transient(err error) bool {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Status >= 500 || ae.Status == http.StatusTooManyRequests
	}
	return true
}

func (a *app) commandsCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "commands",
		Aliases: []string{"command", "cmd"},
		Short:   "Send commands to kiosks and follow them",
		Long: `Commands are stored by the hub and sent to the kiosk when it is online, at most once each.
A command goes queued -> delivered -> accepted -> succeeded or failed, or expires when its TTL
passes before the kiosk accepts it.

The commands a kiosk runs:
` + commandHelp(),
	})
	cmd.AddCommand(a.commandsSendCmd(), a.commandsShowCmd(), a.commandsListCmd())
	return cmd
}

// commandHelp lists api.CommandSpecs: name, arguments and what it does.
func commandHelp() string {
	var b strings.Builder
	t := newTable(&b)
	for _, c := range api.CommandSpecs {
		args := "no args"
		if c.Args != "" {
			args = "args: " + c.Args
		}
		t.row("  "+c.Name, c.Summary+" ("+args+")")
	}
	t.flush()
	return b.String()
}

func (a *app) commandsSendCmd() *cobra.Command {
	var argsFlag, ttl, wait string
	cmd := &cobra.Command{
		Use:     "send DEVICE NAME [--args JSON|@file] [--ttl 1h] [--wait 30s]",
		Aliases: []string{"create"},
		Short:   "Queue a command for a kiosk, and with --wait follow it to the end",
		Long: `Queue command NAME for kiosk DEVICE. --args is its JSON argument, inline, @file or @- for stdin.
The kiosk must accept it within --ttl or it expires. NAME is one of:
` + commandHelp() + `
With --wait the command is followed until it succeeds, fails or expires, printing each state
change; fleetctl exits 0 when it succeeded and 5 when it failed, expired or was still running when
--wait ran out (it keeps running on the kiosk: follow it with 'fleetctl commands show ID').`,
		Example: `  fleetctl commands send k-7c2a9e01b3d4f5a6 print-test-page --args '{"printer":"receipt0"}' --wait 30s
  fleetctl commands send k-7c2a9e01b3d4f5a6 diagnostics --ttl 10m`,
		Args: args("DEVICE", "NAME"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			spec, known := api.LookupCommand(argv[1])
			if !known {
				p.add("NAME: %v", api.CheckCommand(argv[1]))
			}
			cargs := p.jsonArg("--args", argsFlag, c.InOrStdin(), false)
			if spec.ArgsRequired && argsFlag == "" {
				p.add("--args is required by %s: %s", spec.Name, spec.Args)
			}
			p.duration("--ttl", ttl, time.Second)
			waitD := p.duration("--wait", wait, 0)
			send := func(ctx context.Context, hub *api.Client) (fleet.Command, error) {
				return hub.SendCommand(ctx, argv[0], api.CreateCommand{Name: argv[1], Args: cargs, TTL: ttl})
			}
			what := fmt.Sprintf("send %s to %s", argv[1], argv[0])
			if waitD <= 0 {
				return callHub(a, c, &p, what, send, func(cmd fleet.Command) error {
					_, err := fmt.Fprintf(a.env.Stdout, "command %s (%s) %s for %s, expires %s\n", cmd.ID, cmd.Name, cmd.State,
						cmd.DeviceID, a.stamp(cmd.ExpiresAt))
					return err
				})
			}
			if err := a.setup(c, &p); err != nil {
				return err
			}
			ctx, cancel := a.call(c, 0)
			defer cancel()
			cmd, err := send(ctx, a.client)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			return a.follow(c, cmd, waitD)
		},
	}
	f := cmd.Flags()
	f.StringVar(&argsFlag, "args", "", "command arguments as JSON, @file or @- for stdin")
	f.StringVar(&ttl, "ttl", "1h", "expire the command if the kiosk has not accepted it by then (at most 168h)")
	f.StringVar(&wait, "wait", "", "follow the command for up to this long (e.g. 30s); 0 or empty: do not wait")
	return cmd
}

// follow long-polls the command until it is terminal or wait has passed, printing each state it
// sees. Transitions go to stdout, or to stderr with -o json, where stdout gets the last command.
func (a *app) follow(c *cobra.Command, cmd fleet.Command, wait time.Duration) error {
	progress := a.env.Stdout
	if a.json {
		progress = a.env.Stderr
	}
	a.transition(progress, cmd)
	deadline := time.Now().Add(wait) // real time: Env.Now is only for display
	warned := false
	for !cmd.State.Terminal() {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		poll := min(left, maxPoll).Round(time.Millisecond)
		start := time.Now()
		ctx, cancel := a.call(c, poll)
		next, err := a.client.Command(ctx, cmd.ID, max(poll, time.Millisecond))
		cancel()
		gap := minPollGap
		switch {
		case err == nil:
		case c.Context().Err() != nil:
			return fmt.Errorf("stopped following command %s, which goes on (see 'fleetctl commands show %s'): %w",
				cmd.ID, cmd.ID, c.Context().Err())
		case transient(err):
			if !warned {
				fmt.Fprintf(a.env.Stderr, "fleetctl: following command %s: %s; retrying\n", cmd.ID, describe(err))
				warned = true
			}
			next, gap = cmd, retryGap
		default:
			return fmt.Errorf("follow command %s: %w", cmd.ID, err)
		}
		if next.State != cmd.State {
			a.transition(progress, next)
		} else if gap -= time.Since(start); gap > 0 && gap < time.Until(deadline) {
			if err := sleep(c.Context(), gap); err != nil {
				return err
			}
		}
		cmd = next
	}
	if a.json {
		if err := a.emitJSON(cmd); err != nil {
			return err
		}
	} else if cmd.State == api.CommandSucceeded && len(cmd.Output) > 0 {
		fmt.Fprintf(progress, "output:\n%s\n", indentJSON(cmd.Output, "  "))
	}
	switch cmd.State {
	case api.CommandSucceeded:
		return nil
	case api.CommandFailed, api.CommandExpired:
		msg := fmt.Sprintf("command %s %s", cmd.ID, cmd.State)
		if cmd.Error != "" {
			msg += ": " + printable(cmd.Error, false)
		}
		return &commandError{msg}
	}
	return &commandError{fmt.Sprintf("command %s still %s after --wait %v; follow it with 'fleetctl commands show %s'",
		cmd.ID, cmd.State, wait, cmd.ID)}
}

func (a *app) transition(w io.Writer, cmd fleet.Command) {
	at := cmd.UpdatedAt
	if at.IsZero() {
		at = cmd.CreatedAt
	}
	line := fmt.Sprintf("%s  %s  %s", at.In(a.env.Location).Format("15:04:05.000-07:00"), cmd.ID, cmd.State)
	if cmd.Error != "" {
		line += "  " + printable(cmd.Error, false)
	}
	fmt.Fprintln(w, line)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *app) commandsShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show ID",
		Aliases: []string{"get"},
		Short:   "Show one command and its state",
		Example: `  fleetctl commands show c-5eee6e1283997e6de669`,
		Args:    args("ID"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			return callHub(a, c, &p, "show command "+argv[0], func(ctx context.Context, hub *api.Client) (fleet.Command, error) {
				return hub.Command(ctx, argv[0], 0)
			}, func(cmd fleet.Command) error {
				t := newTable(a.env.Stdout)
				t.row("Command:", cmd.ID)
				t.row("Device:", cmd.DeviceID)
				t.row("Name:", cmd.Name)
				if len(cmd.Args) > 0 {
					t.row("Args:", compact(cmd.Args, 500))
				}
				t.row("State:", string(cmd.State))
				t.row("Created:", a.stamp(cmd.CreatedAt))
				t.row("Expires:", a.stamp(cmd.ExpiresAt))
				t.row("Delivered:", a.stamp(cmd.DeliveredAt))
				t.row("Updated:", a.stamp(cmd.UpdatedAt))
				if cmd.Error != "" {
					t.row("Error:", cmd.Error)
				}
				if err := t.flush(); err != nil {
					return err
				}
				if len(cmd.Output) > 0 {
					fmt.Fprintf(a.env.Stdout, "Output:\n%s\n", indentJSON(cmd.Output, "  "))
				}
				return nil
			})
		},
	}
}

func (a *app) commandsListCmd() *cobra.Command {
	var limit string
	cmd := &cobra.Command{
		Use:     "list DEVICE [--limit N]",
		Short:   "List a kiosk's recent commands, newest first",
		Example: `  fleetctl commands list k-7c2a9e01b3d4f5a6 --limit 10`,
		Args:    args("DEVICE"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			n := p.int("--limit", limit, 1, 1000)
			return callHub(a, c, &p, "list commands of "+argv[0], func(ctx context.Context, hub *api.Client) (api.Commands, error) {
				cmds, err := hub.ListCommands(ctx, argv[0], int(n))
				return api.Commands{Commands: nonNil(cmds)}, err
			}, func(out api.Commands) error { return a.commandTable(out.Commands, "") })
		},
	}
	cmd.Flags().StringVar(&limit, "limit", "", "at most this many commands, 1 to 1000 (hub default 50)")
	return cmd
}

func (a *app) commandTable(cmds []fleet.Command, indent string) error {
	now := a.env.Now()
	t := newTable(a.env.Stdout, indent+"ID", "NAME", "STATE", "CREATED", "UPDATED", "ERROR")
	for _, c := range cmds {
		t.row(indent+c.ID, c.Name, string(c.State), ago(now, c.CreatedAt), ago(now, c.UpdatedAt), c.Error)
	}
	return t.flush()
}
