// Package bundle reads kiosk app bundles: a gzip'd tar of a static web app with a manifest.json
// at its root saying what the app is and needs (the local-API services it uses, the peripherals
// it cannot work without, the lowest agent version that runs it). The hub checks a bundle when a
// developer uploads it, fleetctl before signing it, the agent before unpacking it; all three read
// it here, with the same limits: only regular files and directories, clean relative paths, no
// more than MaxFiles files and MaxUnpacked bytes unpacked.
package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/kioskfleet/kioskfleet/pkg/semver"
)

// Limits of a bundle.
const (
	MaxBytes     = 64 << 20  // the archive
	MaxUnpacked  = 256 << 20 // every file unpacked
	MaxFiles     = 10000
	MaxPath      = 256
	ManifestName = "manifest.json"
)

// ErrInvalid marks a bundle that is not one.
var ErrInvalid = errors.New("bundle: invalid")

// Manifest is a bundle's manifest.json.
type Manifest struct {
	App         string   `json:"app"`
	Version     string   `json:"version"`            // semantic version
	Entry       string   `json:"entry"`              // the start page, a file of the bundle (default index.html)
	Services    []string `json:"services,omitempty"` // local-API services: IdCard, Printer, Scanner, BarcodeReader
	Peripherals []string `json:"peripherals,omitempty"`
	MinAgent    string   `json:"minAgentVersion,omitempty"`
}

// Services and peripheral classes a manifest may name (docs/localapi.md; drivers/profile).
var (
	Services          = []string{"IdCard", "Printer", "Scanner", "BarcodeReader"}
	PeripheralClasses = []string{"id-reader", "receipt-printer", "document-printer", "qr-scanner", "document-scanner"}
)

// Bundle is a bundle read and checked: its manifest and its files' paths.
type Bundle struct {
	Manifest Manifest
	Files    []string // every regular file, in archive order
	Unpacked int64    // bytes of all files
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// Read reads and checks a bundle archive (at most MaxBytes).
func Read(archive []byte) (*Bundle, error) {
	if len(archive) > MaxBytes {
		return nil, invalid("archive of %d bytes > %d", len(archive), MaxBytes)
	}
	b := &Bundle{}
	var manifest []byte
	err := walk(bytes.NewReader(archive), func(name string, dir bool, r io.Reader) error {
		if dir {
			return nil
		}
		b.Files = append(b.Files, name)
		if name == ManifestName {
			m, err := io.ReadAll(io.LimitReader(r, 64<<10+1))
			if err != nil {
				return err
			}
			if len(m) > 64<<10 {
				return invalid("%s over 64 KiB", ManifestName)
			}
			manifest = m
			return nil
		}
		n, err := io.Copy(io.Discard, r)
		b.Unpacked += n
		return err
	})
	if err != nil {
		return nil, err
	}
	if manifest == nil {
		return nil, invalid("no %s at the root", ManifestName)
	}
	d := json.NewDecoder(bytes.NewReader(manifest))
	d.DisallowUnknownFields()
	if err := d.Decode(&b.Manifest); err != nil {
		return nil, invalid("%s: %v", ManifestName, err)
	}
	if err := b.Manifest.Check(); err != nil {
		return nil, err
	}
	if !slices.Contains(b.Files, b.Manifest.Entry) {
		return nil, invalid("entry %q is not a file of the bundle", b.Manifest.Entry)
	}
	return b, nil
}

// Check checks a manifest (filling in the default entry), reporting every problem.
func (m *Manifest) Check() error {
	if m.Entry == "" {
		m.Entry = "index.html"
	}
	var p []string
	if len(m.App) < 2 || len(m.App) > 64 || strings.Trim(m.App, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || m.App[0] == '-' {
		p = append(p, fmt.Sprintf("app %q: 2-64 of a-z, 0-9 and '-'", m.App))
	}
	if !semver.Valid(m.Version) {
		p = append(p, fmt.Sprintf("version %q: a semantic version", m.Version))
	}
	if !cleanPath(m.Entry) {
		p = append(p, fmt.Sprintf("entry %q: a clean relative path", m.Entry))
	}
	for _, s := range m.Services {
		if !slices.Contains(Services, s) {
			p = append(p, fmt.Sprintf("service %q: not one of %s", s, strings.Join(Services, ", ")))
		}
	}
	for _, c := range m.Peripherals {
		if !slices.Contains(PeripheralClasses, c) {
			p = append(p, fmt.Sprintf("peripheral %q: not one of %s", c, strings.Join(PeripheralClasses, ", ")))
		}
	}
	if m.MinAgent != "" && !semver.Valid(m.MinAgent) {
		p = append(p, fmt.Sprintf("minAgentVersion %q: a semantic version", m.MinAgent))
	}
	if len(p) > 0 {
		return invalid("%s: %s", ManifestName, strings.Join(p, "; "))
	}
	return nil
}

// Unpack unpacks a checked bundle archive into dir, which must not exist: it is made, the files
// are written into it, and only a complete unpacking leaves it behind. Folders are 0700 and files
// 0600, as everything in the agent's data: the agent that serves them is their only reader.
func Unpack(archive []byte, dir string) (err error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	return walk(bytes.NewReader(archive), func(name string, isDir bool, r io.Reader) error {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if isDir {
			return os.MkdirAll(p, 0o700)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}

// walk reads a gzip'd tar, checking every entry and the limits, and calls fn for each directory
// and regular file with its clean path.
func walk(archive io.Reader, fn func(name string, dir bool, r io.Reader) error) error {
	zr, err := gzip.NewReader(archive)
	if err != nil {
		return invalid("not gzip: %v", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	seen := map[string]bool{}
	var total int64
	files := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return invalid("tar: %v", err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		dir := h.Typeflag == tar.TypeDir
		if dir {
			name = strings.TrimSuffix(name, "/")
			if name == "" || name == "." {
				continue
			}
		}
		switch {
		case h.Typeflag != tar.TypeReg && !dir:
			return invalid("%q: only regular files and directories, not type %q", h.Name, string(h.Typeflag))
		case !cleanPath(name):
			return invalid("%q: not a clean relative path", h.Name)
		case seen[name]:
			return invalid("%q: twice", name)
		}
		seen[name] = true
		if !dir {
			files++
			total += h.Size
			if files > MaxFiles {
				return invalid("more than %d files", MaxFiles)
			}
			if h.Size < 0 || total > MaxUnpacked {
				return invalid("more than %d bytes unpacked", MaxUnpacked)
			}
		}
		if err := fn(name, dir, io.LimitReader(tr, h.Size)); err != nil {
			if errors.Is(err, ErrInvalid) {
				return err
			}
			return fmt.Errorf("bundle: %s: %w", name, err)
		}
	}
}

// cleanPath reports whether p is a clean, relative, portable path inside a bundle.
func cleanPath(p string) bool {
	if p == "" || len(p) > MaxPath || !utf8.ValidString(p) || path.IsAbs(p) || path.Clean(p) != p ||
		p == ".." || strings.HasPrefix(p, "../") || strings.ContainsAny(p, "\\:\x00") {
		return false
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// Build makes a bundle archive of files (path -> content) with manifest m: for tests, tools and
// the benchmarks.
func Build(m Manifest, files map[string][]byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	names := []string{ManifestName}
	all := map[string][]byte{ManifestName: mb}
	for n, b := range files {
		if n != ManifestName {
			names = append(names, n)
			all[n] = b
		}
	}
	slices.Sort(names[1:])
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(all[n])), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(all[n]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
