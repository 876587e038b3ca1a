package server

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestDataFilesPrivate walks the data folder of a running hub: every file (database and its
// WAL and shared memory, CA key and certificate, identity secret, bootstrap token, first-start
// credentials) is its owner's alone, every folder 0700, whatever the umask and even when the
// folder was made looser before.
func TestDataFilesPrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "hub")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	info := serveIn(t, dir)
	if st, m := call(t, "POST", info.HTTPURL+"/api/v1/sites", info.BootstrapToken, `{"id":"sz-1","name":"Hall","region":"440305"}`, nil); st != 201 {
		t.Fatalf("create site: %d %v", st, m) // a write, so that the WAL holds something
	}
	seen := map[string]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		seen[rel] = true
		switch perm := fi.Mode().Perm(); {
		case d.IsDir() && perm != 0o700:
			t.Errorf("folder %s has mode %v, want 0700", rel, perm)
		case !d.IsDir() && perm&0o077 != 0:
			t.Errorf("%s has mode %v: readable by others", rel, perm)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"hub.db", "hub.db-wal", "hub.db-shm", "identity.secret", "bootstrap-token", "initial-credentials",
		filepath.Join("ca", "ca.key"), filepath.Join("ca", "ca.crt")} {
		if !seen[f] {
			t.Errorf("%s not found: the walk checks too little (found %v)", f, seen)
		}
	}
}
