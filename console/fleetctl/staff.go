package fleetctl

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

const staffRoles = "admin, fieldops, reviewer, developer, operator"

func (a *app) staffCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "staff",
		Short: "List and create staff accounts, set their roles and passwords (needs an admin login)",
		Long: `List and create staff accounts at the hub's OpenID Provider and set their roles and passwords. These
commands use the provider's admin API, which takes an access token of an account with the admin
role (fleetctl login), not the hub's bootstrap token. Staff roles: ` + staffRoles + `. A
developer works for one catalog department (--department), and acts only on its apps and guides.

Passwords are read from a file (--password-file F, or - for stdin; one trailing newline is
dropped), never from the command line, and never printed.`,
	})
	cmd.AddCommand(a.staffListCmd(), a.staffCreateCmd(), a.staffUpdateCmd())
	return cmd
}

func (a *app) staffListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List staff accounts with their roles, failed logins and whether they are locked",
		Long: `List every staff account: ID, username, name, roles, consecutive failed logins, and LOCKED
for an account locked by too many of them ("fleetctl staff update USER --roles ..." unlocks it).`,
		Example: `  fleetctl staff list
  fleetctl staff list -o json`,
		Args: args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			return callHub(a, c, &p, "list staff", func(ctx context.Context, hub *api.Client) (api.Staff, error) {
				s, err := hub.ListStaff(ctx)
				return api.Staff{Staff: nonNil(s)}, err
			}, func(v api.Staff) error {
				t := newTable(a.env.Stdout, "ID", "USERNAME", "NAME", "ROLES", "FAILED LOGINS", "STATE")
				for _, s := range v.Staff {
					state := "ok"
					if s.Locked {
						state = "LOCKED"
					}
					t.row(s.ID, s.Username, s.Name, strings.Join(s.Roles, ","), strconv.Itoa(s.Failures), state)
				}
				return t.flush()
			})
		},
	}
}

func (a *app) staffCreateCmd() *cobra.Command {
	var name, pwFile, dept string
	var roles []string
	cmd := &cobra.Command{
		Use:   "create USERNAME --roles R1,R2 --password-file F [--name N] [--department D]",
		Short: "Create a staff account",
		Long: `Create a staff account with a password (8 to 256 characters) and roles (` + staffRoles + `).
The provider refuses a taken username or an unknown role with its reason.`,
		Example: `  fleetctl staff create fieldops1 --name "Li Wei" --roles fieldops --password-file ./pw
  pwgen -s 20 1 | fleetctl staff create reviewer2 --roles reviewer --password-file -
  fleetctl staff create dev1 --roles developer --department tax --password-file ./pw`,
		Args: args("USERNAME"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			p.required([2]string{"--password-file", pwFile})
			if !c.Flag("roles").Changed {
				p.add("--roles is required (a comma-separated list of %s; '' for none)", staffRoles)
			}
			pw := p.password(pwFile, a.env.Stdin)
			req := api.StaffRequest{Username: argv[0], Name: name, Password: pw, Roles: nonNil(roles), Department: dept}
			return callHub(a, c, &p, "create staff account "+argv[0], func(ctx context.Context, hub *api.Client) (api.StaffAccount, error) {
				return hub.CreateStaff(ctx, req)
			}, a.staffTable)
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "the person's name")
	f.StringSliceVar(&roles, "roles", nil, "roles, comma-separated: "+staffRoles+" (required)")
	f.StringVar(&pwFile, "password-file", "", "file holding the password, - for stdin (required)")
	f.StringVar(&dept, "department", "", "catalog department the account works for (required with the developer role)")
	return cmd
}

func (a *app) staffUpdateCmd() *cobra.Command {
	var pwFile, dept string
	var roles []string
	cmd := &cobra.Command{
		Use:   "update USERNAME --roles R1,R2 [--department D] [--password-file F]",
		Short: "Set a staff account's roles (and password); also unlocks it",
		Long: `Set a staff account's roles, and its password if --password-file is given. The API replaces
the roles with the list given, so --roles is required: give all the roles the account keeps
('' for none), and its department likewise (--department; none without it). Every update also clears the account's failed logins, which unlocks an account
locked by too many of them.`,
		Example: `  fleetctl staff update fieldops1 --roles fieldops,reviewer
  fleetctl staff update fieldops1 --roles fieldops --password-file ./new-pw   # reset and unlock`,
		Args: args("USERNAME"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			if !c.Flag("roles").Changed {
				p.add("--roles is required: the API replaces the account's roles (a comma-separated list of %s; '' for none)", staffRoles)
			}
			pw := ""
			if c.Flag("password-file").Changed {
				p.required([2]string{"--password-file", pwFile})
				pw = p.password(pwFile, a.env.Stdin)
			}
			req := api.StaffRequest{Password: pw, Roles: nonNil(roles), Department: dept}
			return callHub(a, c, &p, "update staff account "+argv[0], func(ctx context.Context, hub *api.Client) (api.StaffAccount, error) {
				return hub.UpdateStaff(ctx, argv[0], req)
			}, func(out api.StaffAccount) error {
				if err := a.staffTable(out); err != nil {
					return err
				}
				what := "roles set"
				if pw != "" {
					what = "roles and password set"
				}
				_, err := fmt.Fprintf(a.env.Stdout, "\n%s; failed logins cleared (the account is unlocked)\n", what)
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&roles, "roles", nil, "all the account's roles, comma-separated: "+staffRoles+" (required)")
	f.StringVar(&pwFile, "password-file", "", "file holding a new password, - for stdin")
	f.StringVar(&dept, "department", "", "catalog department the account works for (required with the developer role)")
	return cmd
}

func (a *app) staffTable(v api.StaffAccount) error {
	t := newTable(a.env.Stdout, "ID", "USERNAME", "NAME", "ROLES", "DEPARTMENT")
	t.row(v.ID, v.Username, v.Name, strings.Join(v.Roles, ","), v.Department)
	return t.flush()
}

// password reads a password from file (- for stdin), dropping one trailing newline. An empty
// file is a problem; the provider checks the length.
func (p *problems) password(file string, stdin io.Reader) string {
	if file == "" {
		return ""
	}
	var b []byte
	var err error
	if file == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, 4096))
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		p.add("--password-file %s: %v", file, err)
		return ""
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		p.add("--password-file %s: empty", file)
	}
	return s
}
