package fleetctl

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/bundle"
)

func (a *app) departmentsCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "departments",
		Aliases: []string{"department", "depts"},
		Short:   "List and create the catalog's departments",
	})
	list := &cobra.Command{
		Use:   "list",
		Short: "List departments",
		Args:  args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			return callHub(a, c, &p, "list departments", func(ctx context.Context, hub *api.Client) (api.Departments, error) {
				ds, err := hub.Departments(ctx)
				return api.Departments{Departments: nonNil(ds)}, err
			}, func(out api.Departments) error {
				t := newTable(a.env.Stdout, "ID", "NAME")
				for _, d := range out.Departments {
					t.row(d.ID, d.Name)
				}
				return t.flush()
			})
		},
	}
	var d api.Department
	create := &cobra.Command{
		Use:     "create --id ID --name NAME",
		Short:   "Create a department (needs the admin role)",
		Example: `  fleetctl departments create --id tax --name "税务局 Tax bureau"`,
		Args:    args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			p.required([2]string{"--id", d.ID}, [2]string{"--name", d.Name})
			return callHub(a, c, &p, "create department "+d.ID, func(ctx context.Context, hub *api.Client) (api.Department, error) {
				return hub.CreateDepartment(ctx, d)
			}, func(out api.Department) error {
				_, err := fmt.Fprintf(a.env.Stdout, "department %s created\n", out.ID)
				return err
			})
		},
	}
	create.Flags().StringVar(&d.ID, "id", "", "department ID: a-z, 0-9 and '-' (required)")
	create.Flags().StringVar(&d.Name, "name", "", "display name (required)")
	cmd.AddCommand(list, create)
	return cmd
}

func (a *app) appsCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "apps",
		Aliases: []string{"app"},
		Short:   "The app catalog: apps, versions, review, publishing per channel, audit",
		Long: `The app catalog (docs/catalog.md). A developer creates apps of its department and their versions,
and submits them; a reviewer approves or rejects; an operator publishes a version on a channel
(web, mobile, mini-program, kiosk), lists it there (offers it to citizens), delists it, retires it.
Every change of state is in the audit trail.

A transition is "fleetctl apps transition APP VERSION STATE [--channel C] [--reason R]"; the usual
ones have their own verbs: submit, withdraw, revise, approve, reject, publish, offer (to listed),
delist, retire.`,
		Example: `  fleetctl apps create --id tax-web --department tax --kind web-link --name "个税查询"
  fleetctl apps versions create tax-web 1.0.0 --entry https://etax.example.gov.cn/ --guide g-tax@1
  fleetctl apps submit tax-web 1.0.0
  fleetctl apps approve tax-web 1.0.0
  fleetctl apps publish tax-web 1.0.0 --channel web
  fleetctl apps offer tax-web 1.0.0 --channel web
  fleetctl apps audit tax-web`,
	})
	cmd.AddCommand(a.appsListCmd(), a.appsShowCmd(), a.appsCreateCmd(), a.appVersionsCmd(), a.appsAuditCmd(), a.appsTransitionCmd())
	for _, v := range []struct{ verb, to, short string }{
		{"submit", api.StateSubmitted, "Submit a draft for review (developer)"},
		{"withdraw", api.StateDraft, "Take a submitted version back to draft (developer)"},
		{"approve", api.StateApproved, "Approve a submitted version (reviewer)"},
		{"reject", api.StateRejected, "Reject a submitted version, with --reason (reviewer)"},
		{"publish", api.StatePublished, "Publish an approved version on --channel (operator)"},
		{"offer", api.StateListed, "List a version on --channel: offer it to citizens there (operator)"},
		{"delist", api.StateDelisted, "Delist a version from --channel, with --reason (operator)"},
		{"retire", api.StateRetired, "Retire a version everywhere, with --reason (operator)"},
	} {
		cmd.AddCommand(a.appsVerbCmd(v.verb, v.to, v.short))
	}
	revise := a.appsVerbCmd("revise", api.StateDraft, "Take a rejected version back to draft to change it (developer)")
	cmd.AddCommand(revise)
	return cmd
}

func (a *app) appsListCmd() *cobra.Command {
	var q api.AppQuery
	cmd := &cobra.Command{
		Use:   "list [--department D] [--kind K]",
		Short: "List apps",
		Args:  args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			return callHub(a, c, &p, "list apps", func(ctx context.Context, hub *api.Client) (api.Apps, error) {
				as, err := hub.ListApps(ctx, q)
				return api.Apps{Apps: nonNil(as)}, err
			}, func(out api.Apps) error {
				t := newTable(a.env.Stdout, "ID", "DEPARTMENT", "KIND", "NAME")
				for _, x := range out.Apps {
					t.row(x.ID, x.Department, x.Kind, x.Name)
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().StringVar(&q.Department, "department", "", "only this department's")
	cmd.Flags().StringVar(&q.Kind, "kind", "", "only this kind: kiosk-bundle, web-link, mini-program, mobile-module")
	return cmd
}

func (a *app) appsShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show APP",
		Short:   "Show an app, its versions and their state on each channel",
		Example: `  fleetctl apps show tax-print`,
		Args:    args("APP"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			return callHub(a, c, &p, "show app "+argv[0], func(ctx context.Context, hub *api.Client) (api.App, error) {
				return hub.App(ctx, argv[0])
			}, func(x api.App) error {
				w := a.env.Stdout
				fmt.Fprintf(w, "%s  %s\n  department %s, %s, created %s\n", x.ID, printable(x.Name, false), x.Department, x.Kind, a.stamp(x.CreatedAt))
				if x.Description != "" {
					fmt.Fprintf(w, "  %s\n", printable(x.Description, false))
				}
				fmt.Fprintln(w)
				t := newTable(w, "VERSION", "STATE", "CHANNELS", "ENTRY", "GUIDE", "UPDATED")
				for _, v := range x.Versions {
					guide := ""
					if v.Guide != nil {
						guide = v.Guide.ID + "@" + strconv.FormatInt(v.Guide.Version, 10)
					}
					t.row(v.Version, v.State, channelStates(v.Channels), v.Spec.Entry, guide, a.stamp(v.UpdatedAt))
				}
				return t.flush()
			})
		},
	}
}

// channelStates shows a version's state per channel: "kiosk=listed web=published".
func channelStates(m map[string]string) string {
	var out []string
	for _, ch := range api.Channels {
		if s, ok := m[ch]; ok {
			out = append(out, ch+"="+s)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, " ")
}

func (a *app) appsCreateCmd() *cobra.Command {
	var req api.CreateApp
	cmd := &cobra.Command{
		Use:   "create --id ID --department D --kind K --name N [--description T]",
		Short: "Create an app (a developer of the department)",
		Example: `  fleetctl apps create --id tax-print --department tax --kind kiosk-bundle --name "完税证明打印" \
      --description "刷身份证打印个人所得税完税证明"`,
		Args: args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			p.required([2]string{"--id", req.ID}, [2]string{"--department", req.Department}, [2]string{"--kind", req.Kind}, [2]string{"--name", req.Name})
			if req.Kind != "" && api.KindChannels[req.Kind] == nil {
				p.add("--kind %q: want kiosk-bundle, web-link, mini-program or mobile-module", req.Kind)
			}
			return callHub(a, c, &p, "create app "+req.ID, func(ctx context.Context, hub *api.Client) (api.App, error) {
				return hub.CreateApp(ctx, req)
			}, func(out api.App) error {
				_, err := fmt.Fprintf(a.env.Stdout, "app %s created in department %s; channels for a %s: %s\n", out.ID, out.Department, out.Kind,
					strings.Join(api.KindChannels[out.Kind], ", "))
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.ID, "id", "", "app ID: a-z, 0-9 and '-' (required)")
	f.StringVar(&req.Department, "department", "", "the department that owns it (required)")
	f.StringVar(&req.Kind, "kind", "", "kiosk-bundle, web-link, mini-program or mobile-module (required)")
	f.StringVar(&req.Name, "name", "", "display name (required)")
	f.StringVar(&req.Description, "description", "", "what it does, for citizens")
	return cmd
}

func (a *app) appVersionsCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "versions",
		Aliases: []string{"version"},
		Short:   "Create, show and edit an app's versions",
	})
	specFlags := func(c *cobra.Command, s *api.AppSpec, guide *string) {
		f := c.Flags()
		f.StringVar(&s.Entry, "entry", "", "https URL (web link), page path (mini-program), module ID (mobile), start page (kiosk bundle)")
		f.StringSliceVar(&s.Services, "services", nil, "kiosk bundle: local-API services it uses ("+strings.Join(api.BundleServices, ", ")+")")
		f.StringSliceVar(&s.Peripherals, "peripherals", nil, "kiosk bundle: peripheral classes it cannot work without")
		f.StringVar(&s.MinAgent, "min-agent", "", "kiosk bundle: lowest agent version that runs it")
		f.StringVar(guide, "guide", "", "the guide version published with it: ID@VERSION")
	}
	request := func(p *problems, version string, s api.AppSpec, guide string) api.CreateVersion {
		req := api.CreateVersion{Version: version, Spec: s}
		if guide != "" {
			id, v, ok := strings.Cut(guide, "@")
			n, err := strconv.ParseInt(v, 10, 64)
			if !ok || err != nil || n < 1 || id == "" {
				p.add("--guide %q: want ID@VERSION, e.g. g-tax-cert@3", guide)
			}
			req.Guide = &api.GuideRef{ID: id, Version: n}
		}
		return req
	}
	var s api.AppSpec
	var guide string
	create := &cobra.Command{
		Use:   "create APP VERSION [--entry E] [--guide ID@N] [kiosk flags]",
		Short: "Create a version of an app, in draft",
		Example: `  fleetctl apps versions create tax-web 1.0.0 --entry https://etax.example.gov.cn/ --guide g-tax@1
  fleetctl apps versions create tax-print 1.4.0 --guide g-tax-cert@3   # a kiosk bundle: then upload it`,
		Args: args("APP", "VERSION"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			req := request(&p, argv[1], s, guide)
			return callHub(a, c, &p, "create version "+argv[0]+"@"+argv[1], func(ctx context.Context, hub *api.Client) (api.AppVersion, error) {
				return hub.CreateVersion(ctx, argv[0], req)
			}, a.versionTable)
		},
	}
	specFlags(create, &s, &guide)
	var us api.AppSpec
	var uguide string
	update := &cobra.Command{
		Use:   "update APP VERSION [--entry E] [--guide ID@N] [kiosk flags]",
		Short: "Replace a draft's description (all of it: give every flag it keeps)",
		Args:  args("APP", "VERSION"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			req := request(&p, "", us, uguide)
			return callHub(a, c, &p, "update version "+argv[0]+"@"+argv[1], func(ctx context.Context, hub *api.Client) (api.AppVersion, error) {
				return hub.UpdateVersion(ctx, argv[0], argv[1], req)
			}, a.versionTable)
		},
	}
	specFlags(update, &us, &uguide)
	show := &cobra.Command{
		Use:   "show APP VERSION",
		Short: "Show one version of an app",
		Args:  args("APP", "VERSION"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			return callHub(a, c, &p, "show version "+argv[0]+"@"+argv[1], func(ctx context.Context, hub *api.Client) (api.AppVersion, error) {
				return hub.AppVersion(ctx, argv[0], argv[1])
			}, a.versionTable)
		},
	}
	upload := &cobra.Command{
		Use:   "upload APP VERSION BUNDLE.tar.gz",
		Short: "Upload a draft's kiosk bundle (a gzip'd tar with manifest.json at its root)",
		Long: `Upload the kiosk bundle of a draft version. The hub checks it (only files and directories, clean
paths, the limits, a manifest of this app and version) and takes the version's entry, services,
peripherals and minimum agent version from its manifest. An operator signs it later
(fleetctl keys sign-bundle).`,
		Example: `  tar -czf tax-print-1.4.0.tar.gz -C build . && fleetctl apps versions upload tax-print 1.4.0 tax-print-1.4.0.tar.gz`,
		Args:    args("APP", "VERSION", "BUNDLE"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			b, err := os.ReadFile(argv[2])
			if err != nil {
				p.add("%v", err)
			} else if _, err := bundle.Read(b); err != nil {
				p.add("%s: %v", argv[2], err)
			}
			return callHub(a, c, &p, "upload the bundle of "+argv[0]+"@"+argv[1], func(ctx context.Context, hub *api.Client) (api.AppVersion, error) {
				return hub.UploadBundle(ctx, argv[0], argv[1], bytes.NewReader(b))
			}, a.versionTable)
		},
	}
	cmd.AddCommand(create, update, show, upload)
	return cmd
}

func (a *app) versionTable(v api.AppVersion) error {
	w := a.env.Stdout
	fmt.Fprintf(w, "%s@%s  %s  %s\n", v.App, v.Version, v.State, channelStates(v.Channels))
	rows := [][2]string{{"entry", v.Spec.Entry}, {"services", strings.Join(v.Spec.Services, ", ")},
		{"peripherals", strings.Join(v.Spec.Peripherals, ", ")}, {"min agent", v.Spec.MinAgent}}
	if v.Spec.Bundle != nil {
		rows = append(rows, [2]string{"bundle", fmt.Sprintf("%s (%s, sha256 %s)", v.Spec.Bundle.Target, humanBytes(float64(v.Spec.Bundle.Size)), v.Spec.Bundle.SHA256)})
	}
	if v.Guide != nil {
		rows = append(rows, [2]string{"guide", v.Guide.ID + "@" + strconv.FormatInt(v.Guide.Version, 10)})
	}
	rows = append(rows, [2]string{"created", a.stamp(v.CreatedAt) + " by " + v.CreatedBy}, [2]string{"updated", a.stamp(v.UpdatedAt)})
	t := newTable(w)
	for _, r := range rows {
		if r[1] != "" {
			t.row("  "+r[0], printable(r[1], false))
		}
	}
	return t.flush()
}

func (a *app) appsAuditCmd() *cobra.Command {
	var version, limit string
	cmd := &cobra.Command{
		Use:     "audit APP [--version V] [--limit N]",
		Short:   "Show the audit trail of an app: every change of state, who, when, why",
		Example: `  fleetctl apps audit tax-print --version 1.4.0`,
		Args:    args("APP"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			n := p.int("--limit", limit, 1, 10000)
			return callHub(a, c, &p, "audit of app "+argv[0], func(ctx context.Context, hub *api.Client) (api.Audit, error) {
				es, err := hub.AppAudit(ctx, argv[0], version, int(n))
				return api.Audit{Entries: nonNil(es)}, err
			}, func(out api.Audit) error { return a.auditTable(out.Entries) })
		},
	}
	cmd.Flags().StringVar(&version, "version", "", "only this version")
	cmd.Flags().StringVar(&limit, "limit", "", "only the latest N entries")
	return cmd
}

func (a *app) auditTable(es []api.AuditEntry) error {
	t := newTable(a.env.Stdout, "AT", "VERSION", "CHANNEL", "FROM", "TO", "BY", "REASON")
	for _, e := range es {
		from := e.From
		if from == "" {
			from = "(created)"
		}
		t.row(a.stamp(e.At), e.Version, orDash(e.Channel), from, e.To, e.Actor, printable(e.Reason, false))
	}
	return t.flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (a *app) appsTransitionCmd() *cobra.Command {
	var channel, reason string
	cmd := &cobra.Command{
		Use:   "transition APP VERSION STATE [--channel C] [--reason R]",
		Short: "Move a version (or the version on --channel) to STATE, as the lifecycle allows",
		Long: `Move a version to STATE: submitted, draft, approved, rejected, retired for the version itself;
published, listed, delisted on --channel. The hub refuses what the lifecycle (docs/catalog.md) or
your role does not allow, saying why. Rejecting, delisting and retiring need --reason.`,
		Example: `  fleetctl apps transition tax-web 1.0.0 listed --channel web`,
		Args:    args("APP", "VERSION", "STATE"),
		RunE: func(c *cobra.Command, argv []string) error {
			return a.moveVersion(c, argv[0], argv[1], api.Transition{To: argv[2], Channel: channel, Reason: reason})
		},
	}
	cmd.Flags().StringVar(&channel, "channel", "", "the channel: "+strings.Join(api.Channels, ", "))
	cmd.Flags().StringVar(&reason, "reason", "", "why (required to reject, delist or retire)")
	return cmd
}

func (a *app) appsVerbCmd(verb, to, short string) *cobra.Command {
	var channel, reason string
	onChannel := slices.Contains([]string{api.StatePublished, api.StateListed, api.StateDelisted}, to)
	use := verb + " APP VERSION"
	if onChannel {
		use += " --channel C"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args("APP", "VERSION"),
		RunE: func(c *cobra.Command, argv []string) error {
			if onChannel && channel == "" {
				return usagef("--channel is required: %s", strings.Join(api.Channels, ", "))
			}
			return a.moveVersion(c, argv[0], argv[1], api.Transition{To: to, Channel: channel, Reason: reason})
		},
	}
	if onChannel {
		cmd.Flags().StringVar(&channel, "channel", "", "the channel: "+strings.Join(api.Channels, ", ")+" (required)")
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required to reject, delist or retire)")
	return cmd
}

func (a *app) moveVersion(c *cobra.Command, app, version string, tr api.Transition) error {
	var p problems
	what := fmt.Sprintf("move %s@%s to %s", app, version, tr.To)
	if tr.Channel != "" {
		what += " on " + tr.Channel
	}
	return callHub(a, c, &p, what, func(ctx context.Context, hub *api.Client) (api.Audit, error) {
		es, err := hub.Transition(ctx, app, version, tr)
		return api.Audit{Entries: nonNil(es)}, err
	}, func(out api.Audit) error { return a.auditTable(out.Entries) })
}
