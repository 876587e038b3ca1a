package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/proctest"
)

// TestDataAgainstRealHub runs the data pages in front of a real fleet-hub: a mini-program (the
// built-in public client) posts events of 10 citizens for one service and 9 for another; the
// heat page and its CSV show the first, never the second.
func TestDataAgainstRealHub(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs fleet-hub; skipped with -short")
	}
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bin+"/", "../../hub/cmd/fleet-hub").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	data := t.TempDir()
	httpAddr, mqttAddr := proctest.FreeAddr(t), proctest.FreeAddr(t)
	proctest.Start(t, filepath.Join(bin, "fleet-hub"), "--data", data, "--http-addr", httpAddr, "--mqtt-addr", mqttAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := &api.Client{BaseURL: "https://" + httpAddr} // trusting the hub's CA, as fleet-console --hub-ca does
	proctest.Eventually(t, 30*time.Second, "hub up with a bootstrap token and its CA", func() bool {
		b, err := os.ReadFile(filepath.Join(data, "bootstrap-token"))
		client.Token = strings.TrimSpace(string(b))
		if err != nil || client.Token == "" {
			return false
		}
		roots, err := api.LoadCA(filepath.Join(data, "ca", "ca.crt"))
		if err != nil {
			return false
		}
		client.HTTP = &http.Client{Transport: api.Transport(roots)}
		_, err = client.Health(ctx)
		return err == nil
	})
	var evs []json.RawMessage
	now := time.Now().UnixMilli()
	for i := range 19 {
		svc := "permit.ten"
		if i >= 10 {
			svc = "permit.nine"
		}
		evs = append(evs, json.RawMessage(fmt.Sprintf(`{"v":1,"id":"evt-real-%04d","type":"view","ts":%d,"service":%q,"region":"440304","anonymousId":"install-%d"}`,
			i, now, svc, i)))
	}
	body, _ := json.Marshal(api.EventBatch{Events: evs})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, client.BaseURL+api.EventsPath, bytes.NewReader(body))
	req.SetBasicAuth("mini-program", "")
	res, err := client.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got api.EventsResult
	json.NewDecoder(res.Body).Decode(&got)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || got.Accepted != 19 {
		t.Fatalf("post events: %d %+v", res.StatusCode, got)
	}
	c := newConsoleFor(t, nil, client)
	for _, path := range []string{"/data/heat", "/data/export/heat.csv", "/data/funnel"} {
		status, page := c.get(path)
		if status != http.StatusOK || !strings.Contains(page, "permit.ten") || strings.Contains(page, "permit.nine") {
			t.Fatalf("%s: %d; want permit.ten and never permit.nine:\n%s", path, status, page)
		}
	}
}
