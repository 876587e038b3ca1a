package flagconf

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("addr: file\nwait: 3s\nname: file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	addr := fs.String("addr", "default", "")
	wait := fs.Duration("wait", time.Second, "")
	name := fs.String("name", "default", "")
	other := fs.String("other", "default", "")
	if err := fs.Parse([]string{"-addr", "flag"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("T_NAME", "env")
	if err := Apply(fs, "T_", cfg); err != nil {
		t.Fatal(err)
	}
	if *addr != "flag" || *name != "env" || *wait != 3*time.Second || *other != "default" {
		t.Fatalf("got addr=%s name=%s wait=%s other=%s", *addr, *name, *wait, *other)
	}
}

func TestEveryProblemReported(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("bogus: 1\nwait: soon\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Duration("wait", time.Second, "")
	fs.Int("n", 1, "")
	_ = fs.Parse(nil)
	t.Setenv("T_N", "many")
	err := Apply(fs, "T_", cfg)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`unknown key "bogus"`, `wait: "soon"`, `T_N="many"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestList(t *testing.T) {
	for in, want := range map[string][]string{"": nil, "a": {"a"}, " a , b,,c ": {"a", "b", "c"}, ",": nil} {
		if got := List(in); !slices.Equal(got, want) {
			t.Errorf("List(%q) = %q, want %q", in, got, want)
		}
	}
}
