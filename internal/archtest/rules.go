package archtest

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// Module is the module path of the tree.
const Module = "github.com/kioskfleet/kioskfleet"

// Package is what the checks need of one entry of `go list -deps -test -json`.
type Package struct {
	ImportPath string
	Name       string
	Doc        string
	Dir        string
	Standard   bool
	ForTest    string   // set on a package compiled for another package's test
	Imports    []string // as resolved for this build ("p [q.test]" for test variants)
	Deps       []string // the transitive closure, for a plain (non-test) package
}

// mayImport says, for each top-level folder of the tree, the folders its packages may import
// (shared/ARCHITECTURE.md). e2e may import anything; nothing may import e2e.
var mayImport = map[string][]string{
	"agent":    {"agent", "drivers", "pkg"},
	"hub":      {"hub", "pkg"},
	"console":  {"console", "pkg"},
	"drivers":  {"drivers", "pkg"},
	"pkg":      {"pkg"},
	"internal": {"internal"},
	"e2e":      {"agent", "hub", "console", "drivers", "pkg", "e2e"},
}

// notFor lists packages that the packages under a folder may not import although mayImport
// allows their folder, and why.
var notFor = map[string]map[string]string{
	// The console talks to the hub only through pkg/api, which carries what it needs of the
	// device protocol (command states, the bodies kiosks send).
	"console": {"pkg/wire": "the console reaches the device protocol only through pkg/api"},
	// Storage serves the provider; it never depends on it (a backend would drag the OIDC
	// provider into every program that opens a store).
	"hub/store": {"hub/identity": "storage does not depend on the OIDC provider: its types live in hub/store"},
}

// testMayImport lists what the tests of a package may import beyond its folder's rule, and why.
// The shipped code keeps to mayImport; the tests named here run a real hub in their own process.
var testMayImport = map[string]map[string]string{
	// Staff login: the console's OIDC client against the hub's real provider and its HTTPS,
	// with the provider's scripted browser for the login pages.
	"console/web": {"hub/server": "staff login tests", "hub/identity/identitytest": "staff login tests"},
}

// forbidden says why from may not import to, or "" if notFor does not forbid it.
func forbidden(from, to string) string {
	for dir, pkgs := range notFor {
		if from == dir || strings.HasPrefix(from, dir+"/") {
			if why := pkgs[to]; why != "" {
				return why
			}
		}
	}
	return ""
}

// rel returns p relative to the module ("" when p is outside it), without a test variant suffix
// ("p [q.test]") and without the _test suffix of an external test package.
func rel(p string) string {
	p, _, _ = strings.Cut(p, " ")
	if p != Module && !strings.HasPrefix(p, Module+"/") {
		return ""
	}
	p = strings.TrimPrefix(strings.TrimPrefix(p, Module), "/")
	return strings.TrimSuffix(strings.TrimSuffix(p, ".test"), "_test")
}

func top(p string) string {
	t, _, _ := strings.Cut(p, "/")
	return t
}

// ImportViolations checks every import between the module's packages, test files included.
func ImportViolations(pkgs []Package) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range pkgs {
		from := rel(p.ImportPath)
		if from == "" {
			continue
		}
		allowed, known := mayImport[top(from)]
		isTest := strings.Contains(p.ImportPath, " [")
		for _, imp := range p.Imports {
			to := rel(imp)
			if to == "" || top(to) == top(from) && forbidden(from, to) == "" {
				continue
			}
			if isTest && testMayImport[from][to] != "" {
				continue
			}
			var why string
			switch {
			case !known:
				why = fmt.Sprintf("%s/ is not a folder of shared/ARCHITECTURE.md; add its import rule", top(from))
			case top(to) == "e2e":
				why = "nothing imports e2e"
			case !slices.Contains(allowed, top(to)):
				why = fmt.Sprintf("%s/ may import only %s", top(from), strings.Join(allowed, ", "))
			case forbidden(from, to) != "":
				why = forbidden(from, to)
			default:
				continue
			}
			v := fmt.Sprintf("%s imports %s: %s", from, to, why)
			if !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	return out
}

// ShippedTestCode checks that no command of the module (a main package) links the testing
// package or a test helper package (a name ending in "test", as outboxtest or transporttest).
func ShippedTestCode(pkgs []Package) []string {
	std := map[string]bool{}
	for _, p := range pkgs {
		std[p.ImportPath] = p.Standard
	}
	var out []string
	for _, p := range pkgs {
		if p.Name != "main" || p.ForTest != "" || rel(p.ImportPath) == "" || strings.HasSuffix(p.ImportPath, ".test") {
			continue
		}
		for _, d := range p.Deps {
			if d == "testing" || strings.HasPrefix(d, "testing/") || !std[d] && strings.HasSuffix(path.Base(d), "test") {
				out = append(out, fmt.Sprintf("%s links %s, test code", rel(p.ImportPath), d))
			}
		}
	}
	return out
}

// DocViolations checks that every package of the module says what it is for in a doc comment
// of the usual form: "Package name ..." or, for a command, "Command name ...".
func DocViolations(pkgs []Package) []string {
	var out []string
	for _, p := range pkgs {
		r := rel(p.ImportPath)
		if r == "" && p.ImportPath != Module || p.ForTest != "" || strings.ContainsAny(p.ImportPath, " ") || strings.HasSuffix(p.ImportPath, ".test") {
			continue
		}
		want := "Package " + p.Name + " "
		if p.Name == "main" {
			want = "Command " + path.Base(p.ImportPath) + " "
		}
		if !strings.HasPrefix(p.Doc, want) {
			out = append(out, fmt.Sprintf("%s: no doc comment starting %q", r, want))
		}
	}
	return out
}
