package fleetctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

func (a *app) guidesCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "guides",
		Aliases: []string{"guide"},
		Short:   "Service guides (办事指南): create them, add versions, upload templates",
		Long: `A service guide tells a citizen what a service needs: conditions, materials (with printable
templates), steps, time limit, fees, legal basis, where and when. It has immutable versions; an
app version names the guide version published with it, and once that app is listed on a channel
the guide version is public (JSON and a page, docs/catalog.md).`,
		Example: `  fleetctl guides create --id g-tax-cert --department tax --title "个人所得税完税证明开具"
  fleetctl guides upload-template ./申请表.pdf
  fleetctl guides add-version g-tax-cert --doc @guide.json
  fleetctl guides show g-tax-cert --version 1`,
	})
	cmd.AddCommand(a.guidesListCmd(), a.guidesShowCmd(), a.guidesCreateCmd(), a.guidesAddVersionCmd(), a.guidesTemplateCmd())
	return cmd
}

func (a *app) guidesListCmd() *cobra.Command {
	var dept string
	cmd := &cobra.Command{
		Use:   "list [--department D]",
		Short: "List guides",
		Args:  args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			return callHub(a, c, &p, "list guides", func(ctx context.Context, hub *api.Client) (api.Guides, error) {
				gs, err := hub.ListGuides(ctx, dept)
				return api.Guides{Guides: nonNil(gs)}, err
			}, func(out api.Guides) error {
				t := newTable(a.env.Stdout, "ID", "DEPARTMENT", "LATEST", "TITLE")
				for _, g := range out.Guides {
					t.row(g.ID, g.Department, strconv.FormatInt(g.Latest, 10), printable(g.Title, false))
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().StringVar(&dept, "department", "", "only this department's")
	return cmd
}

func (a *app) guidesShowCmd() *cobra.Command {
	var version string
	cmd := &cobra.Command{
		Use:   "show GUIDE [--version N]",
		Short: "Show a guide and its versions, or one version's document",
		Args:  args("GUIDE"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			n := p.int("--version", version, 1, 1<<62)
			if n > 0 {
				return callHub(a, c, &p, "show guide "+argv[0], func(ctx context.Context, hub *api.Client) (api.GuideVersion, error) {
					return hub.GuideVersion(ctx, argv[0], n)
				}, func(v api.GuideVersion) error {
					fmt.Fprintf(a.env.Stdout, "%s version %d (published: %v), created %s by %s\n", v.Guide, v.Version, v.Published, a.stamp(v.CreatedAt), v.CreatedBy)
					b, _ := json.MarshalIndent(v.Doc, "", "  ")
					_, err := fmt.Fprintln(a.env.Stdout, string(b))
					return err
				})
			}
			return callHub(a, c, &p, "show guide "+argv[0], func(ctx context.Context, hub *api.Client) (api.Guide, error) {
				return hub.Guide(ctx, argv[0])
			}, func(g api.Guide) error {
				fmt.Fprintf(a.env.Stdout, "%s  %s\n  department %s\n\n", g.ID, printable(g.Title, false), g.Department)
				t := newTable(a.env.Stdout, "VERSION", "PUBLISHED", "CREATED", "BY")
				for _, v := range g.Versions {
					t.row(strconv.FormatInt(v.Version, 10), strconv.FormatBool(v.Published), a.stamp(v.CreatedAt), v.CreatedBy)
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().StringVar(&version, "version", "", "show this version's document")
	return cmd
}

func (a *app) guidesCreateCmd() *cobra.Command {
	var req api.CreateGuide
	cmd := &cobra.Command{
		Use:   "create --id ID --department D --title T",
		Short: "Create a guide (a developer of the department), then add versions",
		Args:  args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			p.required([2]string{"--id", req.ID}, [2]string{"--department", req.Department}, [2]string{"--title", req.Title})
			return callHub(a, c, &p, "create guide "+req.ID, func(ctx context.Context, hub *api.Client) (api.Guide, error) {
				return hub.CreateGuide(ctx, req)
			}, func(g api.Guide) error {
				_, err := fmt.Fprintf(a.env.Stdout, "guide %s created; add its first version with: fleetctl guides add-version %s --doc @guide.json\n", g.ID, g.ID)
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.ID, "id", "", "guide ID: a-z, 0-9 and '-' (required)")
	f.StringVar(&req.Department, "department", "", "the department that owns it (required)")
	f.StringVar(&req.Title, "title", "", "its title (required)")
	return cmd
}

func (a *app) guidesAddVersionCmd() *cobra.Command {
	var doc string
	cmd := &cobra.Command{
		Use:   "add-version GUIDE --doc JSON|@file|@-",
		Short: "Store a guide document as the guide's next version",
		Long: `Store a guide document (docs/api.md, api.GuideDoc) as GUIDE's next version. The hub checks all of
it and reports every problem at once. Versions never change: correct a mistake with a new one.`,
		Example: `  fleetctl guides add-version g-tax-cert --doc @guide.json`,
		Args:    args("GUIDE"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			p.required([2]string{"--doc", doc})
			raw := p.jsonArg("--doc", doc, c.InOrStdin(), true)
			var g api.GuideDoc
			if raw != nil {
				d := json.NewDecoder(bytes.NewReader(raw))
				d.DisallowUnknownFields()
				if err := d.Decode(&g); err != nil {
					p.add("--doc: not a guide document: %v", err)
				}
			}
			return callHub(a, c, &p, "add a version to guide "+argv[0], func(ctx context.Context, hub *api.Client) (api.GuideVersion, error) {
				return hub.AddGuideVersion(ctx, argv[0], g)
			}, func(v api.GuideVersion) error {
				_, err := fmt.Fprintf(a.env.Stdout, "guide %s version %d stored\n", v.Guide, v.Version)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&doc, "doc", "", "the guide document: JSON, @file or @- (required)")
	return cmd
}

func (a *app) guidesTemplateCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "upload-template FILE.pdf",
		Short:   "Upload a printable PDF form; a guide's material names it by its sha256",
		Example: `  fleetctl guides upload-template ./个税完税证明申请表.pdf`,
		Args:    args("FILE"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			b, err := os.ReadFile(argv[0])
			if err != nil {
				p.add("%s: %v", argv[0], err)
			} else if !bytes.HasPrefix(b, []byte("%PDF-")) {
				p.add("%s: not a PDF", argv[0])
			}
			return callHub(a, c, &p, "upload template "+argv[0], func(ctx context.Context, hub *api.Client) (api.TemplateInfo, error) {
				return hub.UploadTemplate(ctx, bytes.NewReader(b))
			}, func(t api.TemplateInfo) error {
				_, err := fmt.Fprintf(a.env.Stdout, "template stored: sha256 %s (%s)\n  name it in a material: \"template\": {\"name\": %q, \"sha256\": %q}\n  public at %s%s\n",
					t.SHA256, humanBytes(float64(t.Size)), strings.TrimSuffix(baseName(argv[0]), ".pdf"), t.SHA256, a.client.BaseURL, t.URL)
				return err
			})
		},
	}
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}
