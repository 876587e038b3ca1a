package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var good = Manifest{App: "tax-print", Version: "1.4.0", Services: []string{"Printer"}, Peripherals: []string{"document-printer"}, MinAgent: "0.1.0"}

func TestReadAndUnpack(t *testing.T) {
	a, err := Build(good, map[string][]byte{"index.html": []byte("<h1>完税证明</h1>"), "js/app.js": []byte("console.log(1)")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Read(a)
	if err != nil {
		t.Fatal(err)
	}
	if b.Manifest.Entry != "index.html" || b.Manifest.App != "tax-print" || len(b.Files) != 3 {
		t.Fatalf("read %+v", b)
	}
	dir := filepath.Join(t.TempDir(), "tax-print-1.4.0")
	if err := Unpack(a, dir); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "js", "app.js")); string(got) != "console.log(1)" {
		t.Fatalf("unpacked js/app.js = %q", got)
	}
	if err := Unpack(a, dir); err == nil {
		t.Fatal("unpacked over an existing directory")
	}
}

// tarball makes a gzip'd tar of raw headers, for archives Build would never make.
func tarball(t *testing.T, entries ...*tar.Header) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, h := range entries {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func TestRefused(t *testing.T) {
	reg := func(name string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}
	}
	noEntry, _ := Build(Manifest{App: "a1", Version: "1.0.0", Entry: "main.html"}, map[string][]byte{"index.html": nil})
	badManifest, _ := Build(Manifest{App: "A!", Version: "one", Services: []string{"Login"}, Peripherals: []string{"x"}}, map[string][]byte{"index.html": nil})
	for name, archive := range map[string][]byte{
		"not gzip":       []byte("PK\x03\x04 a zip"),
		"no manifest":    tarball(t, reg("index.html")),
		"path traversal": tarball(t, reg("../../etc/passwd")),
		"absolute path":  tarball(t, reg("/etc/passwd")),
		"symlink":        tarball(t, &tar.Header{Name: "x", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}),
		"device":         tarball(t, &tar.Header{Name: "x", Typeflag: tar.TypeChar}),
		"twice":          tarball(t, reg("a"), reg("a")),
		"unclean":        tarball(t, reg("a/./b")),
		"entry missing":  noEntry,
		"bad manifest":   badManifest,
	} {
		_, err := Read(archive)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
		if err := Unpack(archive, filepath.Join(t.TempDir(), "x")); err == nil && name != "entry missing" && name != "bad manifest" && name != "no manifest" {
			t.Errorf("%s: unpacked", name)
		}
	}
	_, err := Read(badManifest)
	for _, want := range []string{"app", "version", "Login", `"x"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("manifest problems: %v lacks %q", err, want)
		}
	}
}

// TestEndless: an archive that claims or unpacks to more than the limits is refused early.
func TestEndless(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Size: MaxUnpacked + 1, Mode: 0o644})
	tw.Write(make([]byte, 1<<20)) // a truncated body is never reached: the size alone is refused
	zw.Close()
	if _, err := Read(buf.Bytes()); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "unpacked") {
		t.Fatalf("huge entry: %v", err)
	}
}

func FuzzRead(f *testing.F) {
	a, _ := Build(good, map[string][]byte{"index.html": []byte("x")})
	f.Add(a)
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, b []byte) {
		bd, err := Read(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !strings.HasPrefix(err.Error(), "bundle:") {
				t.Fatalf("error not wrapped: %v", err)
			}
			return
		}
		if err := bd.Manifest.Check(); err != nil {
			t.Fatalf("read a bundle whose manifest fails: %v", err)
		}
	})
}
