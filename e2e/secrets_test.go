package e2e

import (
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// TestDataFoldersPrivate walks the data folders of a running hub and a running agent: every file
// they wrote (databases with their WAL and shared memory, keys, certificates, secrets, tokens,
// credentials, state) is its owner's alone and every folder 0700, under the usual umask.
func TestDataFoldersPrivate(t *testing.T) {
	old := syscall.Umask(0o022) // the processes started below inherit it
	defer syscall.Umask(old)
	h := newHub(t)
	h.site("hall-1")
	dir, id := h.enroll("hall-1")
	startAgent(t, "agent", dir)
	waitFor(t, 20*time.Second, id+" heartbeat stored", func() bool { return len(h.records(id, wire.KindHeartbeat)) > 0 })
	for name, c := range map[string]struct {
		dir  string
		want []string
	}{
		"hub":   {h.dir, []string{"hub.db", "hub.db-wal", "hub.db-shm", "identity.secret", "bootstrap-token", "initial-credentials", "ca/ca.key", "ca/ca.crt"}},
		"agent": {dir, []string{"device.key", "device.crt", "hub-ca.crt", "identity.json", "outbox.db", "outbox.db-wal", "outbox.db-shm"}},
	} {
		seen := map[string]bool{}
		err := filepath.WalkDir(c.dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(c.dir, path)
			seen[filepath.ToSlash(rel)] = true
			switch perm := fi.Mode().Perm(); {
			case d.IsDir() && perm != 0o700:
				t.Errorf("%s: folder %s has mode %v, want 0700", name, rel, perm)
			case !d.IsDir() && perm&0o077 != 0:
				t.Errorf("%s: %s has mode %v: readable by others", name, rel, perm)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range c.want {
			if !seen[f] {
				t.Errorf("%s: %s not found (found %v)", name, f, seen)
			}
		}
	}
}
