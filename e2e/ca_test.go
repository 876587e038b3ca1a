package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOfflineRootCeremony moves the device CA's root of a running fleet offline with fleet-hub ca:
// request, export-root, sign (as on the offline machine), install, restart. The kiosk enrolled
// before reconnects to the restarted hub (whose broker certificate now comes from the
// intermediate), a kiosk enrolled after gets a certificate of the intermediate and connects, and
// the hub's data folder no longer holds the root key.
func TestOfflineRootCeremony(t *testing.T) {
	h := newHub(t)
	h.site("hall-1")
	dir1, id1 := h.enroll("hall-1")
	startAgent(t, "agent1", dir1)
	waitFor(t, 20*time.Second, id1+" online", func() bool { return online(h, id1) })

	offline, work := t.TempDir(), t.TempDir()
	csr, cert := filepath.Join(work, "intermediate.csr"), filepath.Join(work, "intermediate.crt")
	ca := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(filepath.Join(binDir, "fleet-hub"), append([]string{"ca"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("fleet-hub ca %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	root := filepath.Join(offline, "root")
	ca("request", "--data", h.dir, "--out", csr)
	ca("export-root", "--data", h.dir, "--root", root)
	ca("sign", "--root", root, "--csr", csr, "--out", cert) // on the offline machine
	ca("install", "--data", h.dir, "--cert", cert)
	if st := ca("status", "--data", h.dir); !strings.Contains(st, "key offline") || !strings.Contains(st, "intermediate:  kioskfleet hub intermediate CA") {
		t.Fatalf("status after the ceremony:\n%s", st)
	}
	if _, err := os.Stat(filepath.Join(h.dir, "ca", "ca.key")); !os.IsNotExist(err) {
		t.Fatalf("the root key is still in the hub's data folder (%v)", err)
	}

	h.p.stop()
	h.start()
	waitFor(t, 30*time.Second, id1+" back online after the restart", func() bool { return online(h, id1) })

	dir2, id2 := h.enroll("hall-1")
	crt, err := os.ReadFile(filepath.Join(dir2, "device.crt"))
	if err != nil {
		t.Fatal(err)
	}
	inter, _ := os.ReadFile(cert)
	if bytes.Count(crt, []byte("BEGIN CERTIFICATE")) != 2 || !bytes.Contains(crt, bytes.TrimSpace(inter)) {
		t.Fatalf("the new kiosk's certificate does not come with the intermediate:\n%s", crt)
	}
	startAgent(t, "agent2", dir2)
	waitFor(t, 20*time.Second, id2+" online", func() bool { return online(h, id2) })
}
