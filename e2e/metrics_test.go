package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A real Prometheus (Debian's prometheus package) scrapes the hub's /metrics over HTTPS, trusting
// the hub's CA, and a kiosk agent's metrics on loopback; the named series of both arrive.
func TestPrometheusScrapesHubAndAgent(t *testing.T) {
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (Debian package prometheus; make test-deps installs it): " + err.Error())
	}
	h := newHub(t)
	h.site("hall-1")
	dir, id := h.enroll("hall-1")
	agentMetrics := freeAddr(t)
	startAgent(t, "agent", dir, "--metrics-addr", agentMetrics)
	waitFor(t, 20*time.Second, "kiosk online", func() bool { return online(h, id) })

	work := t.TempDir()
	cfg := filepath.Join(work, "prometheus.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: hub
    scheme: https
    tls_config:
      ca_file: %s
    static_configs:
      - targets: [%q]
  - job_name: agent
    static_configs:
      - targets: [%q]
`, h.caFile, h.httpAddr, agentMetrics), 0o600); err != nil {
		t.Fatal(err)
	}
	web := freeAddr(t)
	p := exec.Command(prom, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(work, "data"),
		"--web.listen-address="+web, "--log.level=warn")
	logf, err := os.Create(filepath.Join(work, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	p.Stdout, p.Stderr = logf, logf
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Process.Kill(); _ = p.Wait() })

	// Each query must return at least one series: both targets up, and series named by the hub
	// (broker, ingest, Go runtime) and by the agent (link, outbox).
	queries := map[string]string{
		`up{job="hub"} == 1`:                                             "the hub scraped",
		`up{job="agent"} == 1`:                                           "the agent scraped",
		`kioskfleet_broker_sessions{job="hub"} >= 1`:                     "the hub's live MQTT sessions",
		`kf_ingest_records_total{job="hub"} > 0`:                         "records the hub committed",
		`kioskfleet_broker_session_ends_total{job="hub",reason="clean"}`: "session ends by reason",
		`go_goroutines{job="hub"}`:                                       "the hub's Go runtime",
		`kf_agent_hub_connected{job="agent"} == 1`:                       "the agent connected to the hub",
		`kf_agent_outbox_records{job="agent"}`:                           "the agent's outbox",
		`kf_agent_records_acked_total{job="agent"} > 0`:                  "records the hub acknowledged to the agent",
		`process_resident_memory_bytes{job="agent"}`:                     "the agent's memory",
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	missing := func() []string {
		var out []string
		for q, what := range queries {
			if n, err := promSeries(hc, web, q); err != nil || n == 0 {
				out = append(out, fmt.Sprintf("%s (%s): %d series, err %v", what, q, n, err))
			}
		}
		return out
	}
	var m []string
	defer func() {
		if t.Failed() {
			log, _ := os.ReadFile(logf.Name())
			t.Logf("Prometheus still lacks:\n%s\nprometheus log:\n%s", strings.Join(m, "\n"), log)
		}
	}()
	waitFor(t, 60*time.Second, "every series in Prometheus", func() bool { m = missing(); return len(m) == 0 })
}

// promSeries runs an instant query on the Prometheus at addr and returns how many series it gave.
func promSeries(hc *http.Client, addr, query string) (int, error) {
	resp, err := hc.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, err
	}
	if out.Status != "success" {
		return 0, fmt.Errorf("query %q: %s", query, out.Error)
	}
	return len(out.Data.Result), nil
}
