package fleetctl

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

func (a *app) bulkCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "bulk",
		Short: "Act on every kiosk a filter selects: a command, a desired-state change, a revocation",
		Long: `Bulk actions select kiosks by filter (--region, --site, --status online|degraded|offline,
--model, --tag) within your region scope; the hub decides which, not fleetctl. Without --count
nothing happens: the hub answers how many kiosks match, and fleetctl prints the line that acts on
exactly those. With --count N the hub starts a job on them only if exactly N still match, and
follows each kiosk: queued, delivered, acked or failed. Every kiosk acted on is in the audit log.

Each job has an idempotency key (--key, or one fleetctl makes and prints): running the same line
again with the same key answers the job it started instead of acting twice.`,
	})
	cmd.AddCommand(a.bulkDesiredCmd(), a.bulkCommandCmd(), a.bulkRevokeCmd(), a.bulkListCmd(), a.bulkShowCmd())
	return cmd
}

// bulkFlags are the flags every bulk action takes.
type bulkFlags struct {
	req   api.BulkRequest
	count int
	wait  time.Duration
}

func (b *bulkFlags) add(f *pflag.FlagSet) {
	f.StringVar(&b.req.Filter.Region, "region", "", "kiosks whose region code starts with this")
	f.StringVar(&b.req.Filter.Site, "site", "", "kiosks of this site ID")
	f.StringVar(&b.req.Filter.Status, "status", "", "online, degraded (online, a peripheral not ok) or offline kiosks")
	f.StringVar(&b.req.Filter.Model, "model", "", "kiosks of this model")
	f.StringVar(&b.req.Filter.Tag, "tag", "", "kiosks with this tag")
	f.StringVar(&b.req.TTL, "ttl", "", "how long the job waits for its kiosks (default 1h, at most 168h)")
	f.IntVar(&b.count, "count", -1, "act only if exactly this many kiosks match (the count a dry run showed)")
	f.StringVar(&b.req.IdempotencyKey, "key", "", "the job's idempotency key (default: a new one, printed)")
	f.DurationVar(&b.wait, "wait", 0, "follow the job this long, until every kiosk is acked or failed")
}

// run checks the common flags into p and sends the request: a dry run without --count.
func (b *bulkFlags) run(a *app, c *cobra.Command, p *problems) error {
	f := b.req.Filter
	if f.Region != "" && (!isDigits(f.Region) || len(f.Region) > 6) {
		p.add("--region %q: want 1 to 6 digits of a GB/T 2260 code", f.Region)
	}
	switch f.Status {
	case "", "online", "degraded", "offline":
	default:
		p.add("--status %q: want online, degraded or offline", f.Status)
	}
	b.req.DryRun = b.count < 0
	if !b.req.DryRun {
		b.req.Expect = &b.count
		if b.req.IdempotencyKey == "" {
			k := make([]byte, 12)
			_, _ = rand.Read(k)
			b.req.IdempotencyKey = "fleetctl-" + hex.EncodeToString(k)
		}
	}
	return callHub(a, c, p, "bulk "+b.req.Action, func(ctx context.Context, hub *api.Client) (api.BulkJob, error) {
		j, err := hub.Bulk(ctx, b.req)
		if err != nil || j.DryRun || b.wait <= 0 {
			return j, err
		}
		return a.followBulk(c, hub, j, b.wait)
	}, func(j api.BulkJob) error { return a.printBulk(c, j, b.req.IdempotencyKey) })
}

// followBulk polls a job until it is done or wait has passed.
func (a *app) followBulk(c *cobra.Command, hub *api.Client, j api.BulkJob, wait time.Duration) (api.BulkJob, error) {
	deadline := time.Now().Add(wait)
	for j.State != api.BulkDone && time.Now().Before(deadline) {
		select {
		case <-c.Context().Done():
			return j, c.Context().Err()
		case <-time.After(500 * time.Millisecond):
		}
		ctx, cancel := a.call(c, 0)
		next, err := hub.BulkJob(ctx, j.ID)
		cancel()
		if err != nil {
			return j, err
		}
		next.Replayed = j.Replayed
		j = next
	}
	return j, nil
}

// printBulk shows a dry run (and the line that acts on what it counted) or a job's progress.
func (a *app) printBulk(c *cobra.Command, j api.BulkJob, key string) error {
	w := a.env.Stdout
	if j.DryRun {
		const shown = 20
		for i, id := range j.Devices {
			if i == shown {
				fmt.Fprintf(w, "  ... and %d more\n", j.Count-shown)
				break
			}
			fmt.Fprintln(w, "  "+id)
		}
		if j.Count == 0 {
			_, err := fmt.Fprintln(w, "no kiosk matches: nothing to do")
			return err
		}
		line := []string{"fleetctl", "bulk", c.Name()}
		for _, arg := range c.Flags().Args() {
			line = append(line, quoteArg(arg))
		}
		own := c.LocalNonPersistentFlags()
		c.Flags().Visit(func(f *pflag.Flag) {
			if f.Name != "count" && own.Lookup(f.Name) != nil {
				line = append(line, "--"+f.Name, quoteArg(f.Value.String()))
			}
		})
		_, err := fmt.Fprintf(w, "%d kiosks match; nothing done yet. To act on exactly these:\n  %s --count %d\n",
			j.Count, strings.Join(line, " "), j.Count)
		return err
	}
	again := ""
	if j.Replayed {
		again = " (already started by an earlier run with this key)"
	}
	fmt.Fprintf(w, "job %s%s: %s on %d kiosks, %s\n", j.ID, again, j.Action, j.Count, j.State)
	fmt.Fprintf(w, "  queued %d, delivered %d, acked %d, failed %d\n", j.Counts.Queued, j.Counts.Delivered, j.Counts.Acked, j.Counts.Failed)
	if key != "" {
		fmt.Fprintf(w, "  key %s: the same line with --key %s never acts twice\n", key, key)
	}
	if j.Counts.Failed > 0 {
		return &commandError{fmt.Sprintf("%d of %d kiosks failed: fleetctl bulk show %s", j.Counts.Failed, j.Count, j.ID)}
	}
	return nil
}

// quoteArg quotes an argument for a shell line when it needs it.
func quoteArg(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"{}[]$\\*?&;|<>()#!") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (a *app) bulkDesiredCmd() *cobra.Command {
	var b bulkFlags
	var patch string
	cmd := &cobra.Command{
		Use:   "desired --patch JSON|@file [filters] [--count N]",
		Short: "Change the desired configuration of every kiosk selected (a JSON merge patch)",
		Long: `Apply a JSON merge patch (RFC 7396) to the desired configuration of each kiosk selected: the
settings named are set, a setting given null is removed, the others stay. Each kiosk gets the next
desired version and is acked when it reports running it. "bundles" and "agent" belong to rollouts.`,
		Example: `  fleetctl bulk desired --patch '{"heartbeatInterval":"20s"}' --region 440305
  fleetctl bulk desired --patch '{"heartbeatInterval":"20s"}' --region 440305 --count 12 --wait 2m`,
		Args: args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			p.required([2]string{"--patch", patch})
			b.req.Action, b.req.Desired = api.BulkDesired, p.jsonArg("--patch", patch, c.InOrStdin(), true)
			return b.run(a, c, &p)
		},
	}
	cmd.Flags().StringVar(&patch, "patch", "", "the merge patch: a JSON object, @file or @- (required)")
	b.add(cmd.Flags())
	return cmd
}

func (a *app) bulkCommandCmd() *cobra.Command {
	var b bulkFlags
	var argsFlag, ttl string
	cmd := &cobra.Command{
		Use:   "command NAME [--args JSON] [filters] [--count N]",
		Short: "Send a command to every kiosk selected",
		Long: `Queue command NAME for each kiosk selected; a kiosk offline gets it when it connects, until the
command's --cmd-ttl (default: the job's --ttl). A kiosk is acked when its command succeeded.`,
		Example: `  fleetctl bulk command ping --status online --region 4403
  fleetctl bulk command ping --status online --region 4403 --count 40 --wait 1m`,
		Args: args("NAME"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			cmd := &api.CreateCommand{Name: argv[0], TTL: ttl}
			if argsFlag != "" {
				cmd.Args = p.jsonArg("--args", argsFlag, c.InOrStdin(), false)
			}
			b.req.Action, b.req.Command = api.BulkCommand, cmd
			return b.run(a, c, &p)
		},
	}
	cmd.Flags().StringVar(&argsFlag, "args", "", "command arguments as JSON, @file or @- for stdin")
	cmd.Flags().StringVar(&ttl, "cmd-ttl", "", "how long each command waits for its kiosk (default: --ttl)")
	b.add(cmd.Flags())
	return cmd
}

func (a *app) bulkRevokeCmd() *cobra.Command {
	var b bulkFlags
	cmd := &cobra.Command{
		Use:   "revoke [filters] --count N",
		Short: "Revoke every kiosk selected and cut its connection",
		Long: `Revoke each kiosk selected: its certificate is refused from then on and its session is cut.
A filter is required. A revoked kiosk comes back only by a new enrollment.`,
		Example: `  fleetctl bulk revoke --site sz-futian-1 --status offline
  fleetctl bulk revoke --site sz-futian-1 --status offline --count 2`,
		Args: args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			b.req.Action = api.BulkRevoke
			return b.run(a, c, &p)
		},
	}
	b.add(cmd.Flags())
	return cmd
}

func (a *app) bulkListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the bulk jobs you may see, newest first",
		Args:    args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			return callHub(a, c, &p, "list bulk jobs", func(ctx context.Context, hub *api.Client) ([]api.BulkJob, error) {
				return hub.BulkJobs(ctx)
			}, func(js []api.BulkJob) error {
				t := newTable(a.env.Stdout, "ID", "ACTION", "BY", "CREATED", "STATE", "KIOSKS", "ACKED", "FAILED")
				for _, j := range js {
					t.row(j.ID, bulkWhat(j), j.CreatedBy, a.stamp(j.CreatedAt), j.State, strconv.Itoa(j.Count),
						strconv.Itoa(j.Counts.Acked), strconv.Itoa(j.Counts.Failed))
				}
				return t.flush()
			})
		},
	}
}

// bulkWhat says what a job does, briefly.
func bulkWhat(j api.BulkJob) string {
	switch {
	case j.Command != nil:
		return "command " + j.Command.Name
	case len(j.Desired) > 0:
		return "desired " + compact(j.Desired, 60)
	}
	return j.Action
}

func (a *app) bulkShowCmd() *cobra.Command {
	type shown struct {
		api.BulkJob
		Items []api.BulkItem `json:"items"`
	}
	return &cobra.Command{
		Use:     "show JOB",
		Aliases: []string{"get"},
		Short:   "Show a bulk job and each kiosk's progress",
		Args:    args("JOB"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			return callHub(a, c, &p, "show bulk job "+argv[0], func(ctx context.Context, hub *api.Client) (shown, error) {
				j, err := hub.BulkJob(ctx, argv[0])
				if err != nil {
					return shown{}, err
				}
				items, err := hub.BulkItems(ctx, argv[0])
				return shown{j, items}, err
			}, func(s shown) error {
				filter, _ := json.Marshal(s.Filter)
				fmt.Fprintf(a.env.Stdout, "job %s: %s, filter %s, by %s at %s, %s\n", s.ID, bulkWhat(s.BulkJob), filter, s.CreatedBy,
					a.stamp(s.CreatedAt), s.State)
				t := newTable(a.env.Stdout, "KIOSK", "STATE", "REF", "UPDATED", "ERROR")
				for _, it := range s.Items {
					t.row(it.DeviceID, it.State, it.Ref, a.stamp(it.UpdatedAt), it.Error)
				}
				return t.flush()
			})
		},
	}
}
