package fleetctl

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/bundle"
	"github.com/kioskfleet/kioskfleet/pkg/proctest"
	"github.com/kioskfleet/kioskfleet/pkg/tufmeta/tuftest"
)

// realHub starts a real fleet-hub built from this tree and returns fleetctl against it (as the
// bootstrap admin), its URL, an HTTP client trusting its CA and a scratch directory.
func realHub(t *testing.T) (fc func(args ...string) result, hubURL string, hc *http.Client, data string) {
	if testing.Short() {
		t.Skip("builds and runs fleet-hub; skipped with -short")
	}
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bin+"/", "../../hub/cmd/fleet-hub").CombinedOutput(); err != nil {
		t.Fatalf("build fleet-hub: %v\n%s", err, out)
	}
	data = t.TempDir()
	httpAddr, mqttAddr := proctest.FreeAddr(t), proctest.FreeAddr(t)
	proctest.Start(t, filepath.Join(bin, "fleet-hub"), "--data", filepath.Join(data, "hub"), "--http-addr", httpAddr, "--mqtt-addr", mqttAddr)
	caFile := filepath.Join(data, "hub", "ca", "ca.crt")
	env := map[string]string{"KF_HUB": "https://" + httpAddr, "KF_CA": caFile, "KF_TOKEN": "", "KF_TOKEN_FILE": filepath.Join(data, "hub", "bootstrap-token")}
	fc = func(args ...string) result { t.Helper(); return run(t, nil, env, args...) }
	proctest.Eventually(t, 30*time.Second, "hub healthy", func() bool { return fc("health").code == 0 })
	roots, err := api.LoadCA(caFile)
	if err != nil {
		t.Fatal(err)
	}
	return fc, "https://" + httpAddr, &http.Client{Transport: api.Transport(roots)}, data
}

// TestCatalogAgainstRealHub drives the catalog with fleetctl against a real fleet-hub: a
// department, a guide with a template and a version, a web-link app through review to listed on
// the web channel, the audit trail, and the public reads; refusals come back with the hub's
// reason and exit code.
func TestCatalogAgainstRealHub(t *testing.T) {
	fc, hubURL, hubHTTP, data := realHub(t)

	fc("departments", "create", "--id", "tax", "--name", "税务局").want(t, 0, []string{"department tax created"}, nil)
	fc("departments", "list").want(t, 0, []string{"tax", "税务局"}, nil)
	pdf := filepath.Join(data, "申请表.pdf")
	os.WriteFile(pdf, []byte("%PDF-1.7\n% form\n"), 0o600)
	r := fc("guides", "upload-template", pdf, "-o", "json")
	var tpl api.TemplateInfo
	if err := json.Unmarshal([]byte(r.stdout), &tpl); err != nil || len(tpl.SHA256) != 64 {
		t.Fatalf("upload-template: %+v %s %s", r, r.stdout, r.stderr)
	}
	fc("guides", "create", "--id", "g-tax", "--department", "tax", "--title", "完税证明").want(t, 0, []string{"guide g-tax created"}, nil)
	doc := `{"title":"完税证明开具","conditions":["已纳税"],"materials":[{"name":"申请表","form":"original","copies":1,"required":true,
		"template":{"name":"申请表","sha256":"` + tpl.SHA256 + `"}}],"steps":[{"title":"提交"}],"timeLimit":{"legalDays":5,"promisedDays":1},
		"fees":[],"legalBasis":["《税收征收管理法》"],"locations":[{"name":"办税服务厅","hours":"工作日"}]}`
	fc("guides", "add-version", "g-tax", "--doc", doc).want(t, 0, []string{"guide g-tax version 1 stored"}, nil)
	fc("guides", "add-version", "g-tax", "--doc", `{"title":""}`).want(t, ExitError, nil, []string{"bad_request (HTTP 400)", "title:", "steps:", "locations:"})
	fc("guides", "show", "g-tax").want(t, 0, []string{"g-tax", "1", "false"}, nil)

	fc("apps", "create", "--id", "tax-web", "--department", "tax", "--kind", "web-link", "--name", "个税查询").
		want(t, 0, []string{"app tax-web created", "web, mobile, kiosk"}, nil)
	fc("apps", "create", "--id", "x", "--kind", "fax").want(t, ExitUsage, nil, []string{"--department is required", "--name is required", `--kind "fax"`})
	fc("apps", "versions", "create", "tax-web", "1.0.0", "--entry", "https://etax.example.gov.cn/", "--guide", "g-tax@1").
		want(t, 0, []string{"tax-web@1.0.0", "draft", "g-tax@1"}, nil)
	fc("apps", "publish", "tax-web", "1.0.0", "--channel", "web").want(t, ExitError, nil, []string{"conflict (HTTP 409)", "only an approved version"})
	fc("apps", "submit", "tax-web", "1.0.0").want(t, 0, []string{"draft", "submitted"}, nil)
	fc("apps", "reject", "tax-web", "1.0.0").want(t, ExitError, nil, []string{"bad_request", "reason"})
	fc("apps", "approve", "tax-web", "1.0.0").want(t, 0, []string{"approved"}, nil)
	fc("apps", "publish", "tax-web", "1.0.0").want(t, ExitUsage, nil, []string{"--channel is required"})
	fc("apps", "publish", "tax-web", "1.0.0", "--channel", "web").want(t, 0, []string{"published"}, nil)
	fc("apps", "offer", "tax-web", "1.0.0", "--channel", "web").want(t, 0, []string{"listed"}, nil)
	fc("apps", "show", "tax-web").want(t, 0, []string{"1.0.0", "approved", "web=listed", "g-tax@1"}, nil)
	fc("apps", "audit", "tax-web").want(t, 0, []string{"(created)", "submitted", "approved", "published", "listed", "bootstrap-admin"}, nil)
	fc("apps", "show", "nope").want(t, ExitNotFound, nil, []string{"not_found (HTTP 404)"})

	var cc api.ChannelCatalog
	hc := &api.Client{BaseURL: hubURL, HTTP: hubHTTP} // no token: a channel
	cc, err := hc.ChannelCatalog(t.Context(), "web")
	if err != nil || len(cc.Apps) != 1 || cc.Apps[0].Guide == nil {
		t.Fatalf("public web catalog: %+v, %v", cc, err)
	}
	g, err := hc.PublishedGuide(t.Context(), "g-tax", 0)
	if err != nil || g.Doc.Title != "完税证明开具" {
		t.Fatalf("public guide: %+v, %v", g, err)
	}
	fc("guides", "show", "g-tax").want(t, 0, []string{"true"}, nil)
}

// TestSignedBundleAgainstRealHub: a developer uploads a kiosk bundle, it is reviewed, the hub
// refuses to publish it on the kiosk channel until the operator signs it offline (fleetctl keys),
// and then a TUF client (go-tuf's, as an agent uses it) fetches and verifies it from the hub.
func TestSignedBundleAgainstRealHub(t *testing.T) {
	fc, hubURL, hubHTTP, data := realHub(t)
	keys := filepath.Join(data, "keys")
	fc("departments", "create", "--id", "tax", "--name", "税务局").want(t, 0, nil, nil)
	fc("apps", "create", "--id", "tax-print", "--department", "tax", "--kind", "kiosk-bundle", "--name", "完税证明打印").want(t, 0, nil, nil)
	fc("apps", "versions", "create", "tax-print", "1.0.0").want(t, 0, []string{"draft"}, nil)
	archive := tuftest.Bundle(t, bundle.Manifest{App: "tax-print", Version: "1.0.0", Services: []string{"Printer"}, Peripherals: []string{"document-printer"}}, 200_000)
	file := filepath.Join(data, "tax-print-1.0.0.tar.gz")
	os.WriteFile(file, archive, 0o600)
	wrong := tuftest.Bundle(t, bundle.Manifest{App: "tax-print", Version: "9.9.9"}, 10)
	os.WriteFile(file+".wrong", wrong, 0o600)
	fc("apps", "versions", "upload", "tax-print", "1.0.0", file+".wrong").want(t, ExitError, nil, []string{"bad_request", "not tax-print@1.0.0"})
	fc("apps", "versions", "upload", "tax-print", "1.0.0", file).want(t, 0, []string{"bundles/tax-print/1.0.0.tar.gz", "Printer", "document-printer"}, nil)
	fc("apps", "submit", "tax-print", "1.0.0").want(t, 0, nil, nil)
	fc("apps", "approve", "tax-print", "1.0.0").want(t, 0, nil, nil)
	fc("apps", "publish", "tax-print", "1.0.0", "--channel", "kiosk").want(t, ExitError, nil, []string{"conflict (HTTP 409)", "has no root yet"})

	fc("keys", "generate", "--dir", keys).want(t, 0, []string{"root.key: key ID", "targets.key: key ID"}, nil)
	fc("keys", "generate", "--dir", keys).want(t, ExitUsage, nil, []string{"never overwritten"})
	fc("keys", "init", "--dir", keys).want(t, 0, []string{"root version 1 and targets version 1 set"}, nil)
	fc("apps", "publish", "tax-print", "1.0.0", "--channel", "kiosk").want(t, ExitError, nil, []string{"not signed yet", "fleetctl keys sign-bundle tax-print 1.0.0"})
	fc("keys", "sign-bundle", "tax-print", "1.0.0", "--dir", keys).want(t, 0, []string{"signed bundles/tax-print/1.0.0.tar.gz", "targets version 2"}, nil)
	fc("apps", "publish", "tax-print", "1.0.0", "--channel", "kiosk").want(t, 0, []string{"published"}, nil)
	fc("keys", "status").want(t, 0, []string{"root", "targets", "snapshot", "timestamp", "bundles/tax-print/1.0.0.tar.gz", "bundle"}, nil)
	// Another targets key does not sign over this one's list.
	other := filepath.Join(data, "other")
	fc("keys", "generate", "--dir", other).want(t, 0, nil, nil)
	fc("keys", "sign-bundle", "tax-print", "1.0.0", "--dir", other).want(t, ExitError, nil, []string{"not signed by this targets key"})

	// A TUF client trusting root version 1 fetches and verifies the bundle.
	root, err := os.ReadFile(filepath.Join(keys, "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.New(hubURL+"/tuf", root)
	if err != nil {
		t.Fatal(err)
	}
	f := fetcher.NewDefaultFetcher() // NewFetcherWithHTTPClient would drop its one-try retry option
	f.SetHTTPClient(hubHTTP)
	cfg.Fetcher = f
	cfg.LocalMetadataDir, cfg.LocalTargetsDir = filepath.Join(data, "tuf-meta"), filepath.Join(data, "tuf-targets")
	up, err := updater.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Refresh(); err != nil {
		t.Fatalf("TUF refresh: %v", err)
	}
	ti, err := up.GetTargetInfo("bundles/tax-print/1.0.0.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	_, got, err := up.DownloadTarget(ti, "", "")
	if err != nil || !bytes.Equal(got, archive) {
		t.Fatalf("TUF download: %d bytes, %v", len(got), err)
	}
}
