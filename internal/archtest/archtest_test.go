package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// root is the module's folder.
func root(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(string(bytes.TrimSpace(out)))
}

// list runs `go list -deps -test -json ./...`: every package of the module, test variants
// included, and everything they depend on.
func list(t *testing.T) []Package {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-test", "-json", "./...")
	cmd.Dir = root(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []Package
	for d := json.NewDecoder(bytes.NewReader(out)); ; {
		var p Package
		if err := d.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 100 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func report(t *testing.T, what string, problems []string) {
	t.Helper()
	if len(problems) > 0 {
		t.Errorf("%s:\n  %s", what, strings.Join(problems, "\n  "))
	}
}

func TestTree(t *testing.T) {
	pkgs := list(t)
	report(t, "imports across the walls of shared/ARCHITECTURE.md", ImportViolations(pkgs))
	report(t, "test code in a shipped binary", ShippedTestCode(pkgs))
	report(t, "packages that do not say what they are for", DocViolations(pkgs))
}

// TestGoModTidy: go.mod lists what the code imports, no more, with // indirect where it is true.
func TestGoModTidy(t *testing.T) {
	cmd := exec.Command("go", "mod", "tidy", "-diff")
	cmd.Dir = root(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("go.mod or go.sum is not tidy (run go mod tidy): %v\n%s", err, out)
	}
}

// The checks catch what they are for: each rule broken once, on made-up packages.
func TestChecksCatchBreakage(t *testing.T) {
	m := func(p string) string { return Module + "/" + p }
	pkgs := []Package{
		{ImportPath: m("console/web"), Name: "web", Doc: "Package web is the console.", Imports: []string{m("pkg/api"), m("pkg/wire"), "fmt"}},
		{ImportPath: m("hub/ingest [" + m("hub/ingest.test") + "]"), Name: "ingest", ForTest: m("hub/ingest"),
			Imports: []string{m("agent/outbox"), m("hub/store"), m("pkg/wire [" + m("hub/ingest.test") + "]")}},
		{ImportPath: m("pkg/fleet"), Name: "fleet", Doc: "Package fleet holds types.", Imports: []string{m("hub/store")}},
		{ImportPath: m("drivers/idcard_test [" + m("drivers/idcard.test") + "]"), Name: "idcard_test", Imports: []string{m("e2e"), m("agent/devices")}},
		{ImportPath: m("tools/gen"), Name: "gen", Doc: "Package gen generates.", Imports: []string{m("pkg/api")}},
		{ImportPath: m("drivers/cmd/devsim"), Name: "main", Doc: "Devsim runs simulators.",
			Deps: []string{"fmt", "internal/synctest", "testing", m("drivers/transport/transporttest"), m("drivers/escpos/escpossim")}},
		{ImportPath: m("agent/outbox"), Name: "outbox", Doc: "Package outbox is the queue.", Imports: []string{m("pkg/sqlitex")}},
		{ImportPath: m("agent/link"), Name: "link", Imports: []string{m("agent/outbox"), m("pkg/wire")}},
		{ImportPath: m("hub/store/sqlite"), Name: "sqlite", Doc: "Package sqlite stores.", Imports: []string{m("hub/store"), m("hub/identity")}},
		{ImportPath: "internal/synctest", Name: "synctest", Standard: true},
		{ImportPath: "testing", Name: "testing", Standard: true},
	}
	for _, tc := range []struct {
		name string
		got  []string
		want []string
	}{
		{"imports", ImportViolations(pkgs), []string{
			"console/web imports pkg/wire: the console reaches the device protocol only through pkg/api",
			"hub/ingest imports agent/outbox: hub/ may import only hub, pkg",
			"pkg/fleet imports hub/store: pkg/ may import only pkg",
			"drivers/idcard imports e2e: nothing imports e2e",
			"drivers/idcard imports agent/devices: drivers/ may import only drivers, pkg",
			"tools/gen imports pkg/api: tools/ is not a folder of shared/ARCHITECTURE.md; add its import rule",
			"hub/store/sqlite imports hub/identity: storage does not depend on the OIDC provider: its types live in hub/store",
		}},
		{"shipped", ShippedTestCode(pkgs), []string{
			"drivers/cmd/devsim links testing, test code",
			"drivers/cmd/devsim links " + m("drivers/transport/transporttest") + ", test code",
		}},
		{"docs", DocViolations(pkgs), []string{
			`drivers/cmd/devsim: no doc comment starting "Command devsim "`,
			`agent/link: no doc comment starting "Package link "`,
		}},
	} {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("%s:\n got  %q\n want %q", tc.name, tc.got, tc.want)
		}
	}
}
