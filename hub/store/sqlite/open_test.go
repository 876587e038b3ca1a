package sqlite_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kioskfleet/kioskfleet/hub/store"
)

// TestOpenURL: store.Open finds this backend by its scheme, and a bad URL says what is wrong.
func TestOpenURL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	s, err := store.Open(t.Context(), "sqlite:"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := store.CheckURL("sqlite:" + path); err != nil {
		t.Fatal(err)
	}
	for url, want := range map[string]string{
		"":                "want scheme:location",
		"var/hub/hub.db":  "want scheme:location",
		"sqlite:":         "want scheme:location",
		"Sqlite:x":        "want scheme:location",
		"mysql://h/db":    `no backend for "mysql" (have: sqlite)`,
		"postgres://h/db": `no backend for "postgres"`,
	} {
		if _, err := store.Open(t.Context(), url, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want an error saying %q", url, err, want)
		}
	}
	if _, err := store.Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "no", "such", "dir", "hub.db"), nil); err == nil {
		t.Error("Open in a missing folder succeeded")
	}
}
