package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/kioskfleet/kioskfleet/drivers/idcard/idcardsim"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// An ID card read through the whole agent path (simulated reader on a pty, driver, device
// manager, command, outbox, hub) leaves the holder's number and name in no log line, no record
// and no file on either side.
func TestCanaryIDNeverLeaves(t *testing.T) {
	h := newHub(t)
	h.site("hall-1")
	dir, id := h.enroll("hall-1")
	simDir := t.TempDir()
	sim := start(t, "devsim", "devsim", "kiosk", "--dir", simDir, "--no-ipp", "--no-sane", "--card", "resident")
	cfg := filepath.Join(simDir, "devices.yaml")
	waitFor(t, 20*time.Second, "devsim ready", func() bool { _, err := os.Stat(cfg); return err == nil })
	a := startAgent(t, "agent", dir, "--devices", cfg, "--profiles", "../firmware-profiles")
	waitFor(t, 20*time.Second, "online", func() bool { return online(h, id) })

	for range 3 {
		c, err := h.client.SendCommand(bg, id, api.CreateCommand{Name: "idcard-selftest", TTL: "1m"})
		if err != nil {
			t.Fatal(err)
		}
		if c, err = h.client.Command(bg, c.ID, 30*time.Second); err != nil || c.State != wire.CmdSucceeded {
			t.Fatalf("idcard-selftest: %+v %v", c, err)
		}
		var out struct{ CardType, Read string }
		if err := json.Unmarshal(c.Output, &out); err != nil || out.Read != "ok" {
			t.Fatalf("selftest output %s", c.Output)
		}
	}
	a.stop()
	h.p.stop()
	sim.stop()

	card := idcardsim.Resident()
	needles := map[string][]byte{}
	for _, s := range []string{card.Number, card.Name, card.Address} {
		needles[s] = []byte(s)
		u := utf16.Encode([]rune(s)) // the card's own text block is UCS-2 little-endian
		le := make([]byte, 0, 2*len(u))
		for _, r := range u {
			le = append(le, byte(r), byte(r>>8))
		}
		needles[s+" (UCS-2)"] = le
	}
	var files []string
	for _, root := range []string{h.dir, dir, filepath.Dir(h.p.log), filepath.Dir(a.log), filepath.Dir(sim.log)} {
		_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				files = append(files, p)
			}
			return nil
		})
	}
	for _, f := range files {
		if filepath.Base(f) == "devsim.log" {
			continue // the simulator is the card: it may print what it holds
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for name, n := range needles {
			if bytes.Contains(b, n) {
				t.Errorf("%s holds the card holder's %q", f, name)
			}
		}
	}
	if len(files) < 6 {
		t.Fatalf("searched only %d files: %v", len(files), files)
	}
	t.Logf("searched %d files (hub and agent databases, WALs, logs): no card data", len(files))
}
