package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/ca/catest"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/floodtest"
)

// startHub runs a hub with lim until the test ends.
func startHub(t *testing.T, lim Limits) Info {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Info, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", Limits: lim},
			func(i Info) { ready <- i })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub: %v", err)
		}
	})
	select {
	case i := <-ready:
		return i
	case err := <-done:
		t.Fatalf("hub: %v", err)
		return Info{}
	}
}

// dial connects from the loopback address src to the hub's HTTPS side, trusting its CA.
func dial(t *testing.T, src string, info Info) net.Conn {
	t.Helper()
	roots, err := api.LoadCA(info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(floodtest.DialFrom(t, src, strings.TrimPrefix(info.HTTPURL, "https://")), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	return c
}

// rawHTTP sends raw on a new connection from the loopback address src and returns the answer.
func rawHTTP(t *testing.T, src string, info Info, raw string) (*http.Response, string) {
	t.Helper()
	c := dial(t, src, info)
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return readResponse(t, c)
}

func readResponse(t *testing.T, c net.Conn) (*http.Response, string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func post(path, contentType, body string) string {
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: hub\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s", path, contentType, len(body), body)
}

// refusals reads kioskfleet_http_rejections_total for reason.
func refusals(t *testing.T, info Info, reason string) string {
	t.Helper()
	roots, err := api.LoadCA(info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	res, err := clientFor(roots).Get(info.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), `kioskfleet_http_rejections_total{reason="`+reason+`"} `); ok {
			return v
		}
	}
	return "absent"
}

// TestHTTPBodyLimits: bodies the hub reads before it knows who sent them (enrollment, the
// OpenID Provider) are refused past the anonymous limit and counted; an authenticated request
// may send more.
func TestHTTPBodyLimits(t *testing.T) {
	info := startHub(t, Limits{})
	big := strings.Repeat("a", DefaultAnonBody+1)
	res, body := rawHTTP(t, "127.0.0.1", info, post("/api/v1/enroll", "application/json", `{"token":"`+big+`"}`))
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, fmt.Sprintf("over %d bytes", DefaultAnonBody)) {
		t.Errorf("enroll with a large body: %d %s", res.StatusCode, body)
	}
	res, body = rawHTTP(t, "127.0.0.1", info, post("/oidc/token", "application/x-www-form-urlencoded", "grant_type="+big))
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("token with a large body: %d %s", res.StatusCode, body)
	}
	if n := refusals(t, info, refusedBodyTooLarge); n != "2" {
		t.Errorf("body_too_large counted %s, want 2", n)
	}
	// JSON may carry 100 KiB of white space: only the authenticated API takes it.
	site := `{"id":"hall-1","name":"Hall 1","region":"440305"` + strings.Repeat(" ", 100<<10) + `}`
	req := strings.Replace(post("/api/v1/sites", "application/json", site), "\r\n\r\n", "\r\nAuthorization: Bearer "+info.BootstrapToken+"\r\n\r\n", 1)
	if res, body = rawHTTP(t, "127.0.0.1", info, req); res.StatusCode != http.StatusCreated {
		t.Errorf("authenticated request of 100 KiB: %d %s", res.StatusCode, body)
	}
}

// TestHTTPSlowBody: a body that does not arrive within the read timeout is given up on, and
// counted.
func TestHTTPSlowBody(t *testing.T) {
	info := startHub(t, Limits{HTTPReadTimeout: 500 * time.Millisecond})
	c := dial(t, "127.0.0.1", info)
	io.WriteString(c, "POST /api/v1/enroll HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"token\":")
	if res, body := readResponse(t, c); res.StatusCode != http.StatusRequestTimeout || !strings.Contains(body, "read timeout") {
		t.Errorf("slow body: %d %s", res.StatusCode, body)
	}
	if n := refusals(t, info, refusedBodyTimeout); n != "1" {
		t.Errorf("body_timeout counted %s, want 1", n)
	}
}

// TestHTTPConnsPerAddr: a client address holding its limit of connections has the next one
// answered 503, saying why, while other addresses are served.
func TestHTTPConnsPerAddr(t *testing.T) {
	info := startHub(t, Limits{HTTPConnsPerAddr: 2})
	get := "GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n"
	for range 2 { // two kept-alive connections
		c := dial(t, "127.0.0.2", info)
		io.WriteString(c, get)
		if res, _ := readResponse(t, c); res.StatusCode != http.StatusOK {
			t.Fatalf("within the limit: %d", res.StatusCode)
		}
	}
	res, body := rawHTTP(t, "127.0.0.2", info, get)
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "too many connections from this address: 127.0.0.2/32 (limit 2)") ||
		res.Header.Get("Retry-After") == "" || !res.Close {
		t.Errorf("over the limit: %d %q %v", res.StatusCode, body, res.Header)
	}
	if res, _ := rawHTTP(t, "127.0.0.3", info, get); res.StatusCode != http.StatusOK {
		t.Errorf("another address: %d", res.StatusCode)
	}
	if n := refusals(t, info, refusedAddrLimit); n != "1" {
		t.Errorf("addr_limit counted %s, want 1", n)
	}
}

func TestValidateLimits(t *testing.T) {
	c := Config{DataDir: "d", HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
		Limits: Limits{HTTPReadTimeout: -time.Second, AnonBody: 100, MQTTMaxConnect: 10}}
	err := c.Validate()
	for _, want := range []string{"http read timeout: -1s", "anonymous body limit: 100 bytes", "mqtt max connect: 10 bytes"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to say %q", err, want)
		}
	}
}

// TestHTTPLongPollOutlastsTimeouts: through the hub's whole HTTP stack (limits, body counting,
// identity, API), a long poll holds its request past read and write timeouts shorter than it.
func TestHTTPLongPollOutlastsTimeouts(t *testing.T) {
	info := startHub(t, Limits{HTTPReadTimeout: 300 * time.Millisecond, HTTPWriteTimeout: 300 * time.Millisecond})
	roots, err := api.LoadCA(info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	c := &api.Client{BaseURL: info.HTTPURL, Token: info.BootstrapToken, HTTP: clientFor(roots)}
	ctx := t.Context()
	if _, err := c.CreateSite(ctx, fleet.Site{ID: "hall-1", Name: "Hall 1", Region: "440305"}); err != nil {
		t.Fatal(err)
	}
	tok, err := c.CreateToken(ctx, api.CreateToken{SiteID: "hall-1"})
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := catest.NewCSR(t, "kiosk")
	dev, err := c.Enroll(ctx, api.Enroll{Token: tok.Secret, CSR: string(csr)})
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := c.SendCommand(ctx, dev.DeviceID, api.CreateCommand{Name: "reboot"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Command(ctx, cmd.ID, time.Second)
	if err != nil || got.ID != cmd.ID {
		t.Fatalf("long poll of 1 s with timeouts of 300 ms: %+v, %v", got, err)
	}
}

// TestHTTPRefusedConnEnds: once the hub has answered a request it refused (a body over the
// anonymous limit; a connection over the per-address limit), it ends the connection at once,
// instead of reading on for the rest of the body until the read timeout.
func TestHTTPRefusedConnEnds(t *testing.T) {
	info := startHub(t, Limits{HTTPReadTimeout: time.Minute, HTTPConnsPerAddr: 1})
	head := func(n int) string {
		return fmt.Sprintf("POST /api/v1/enroll HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", n)
	}
	ended := func(what string, c net.Conn, want int) {
		t.Helper()
		res, _ := readResponse(t, c)
		if res.StatusCode != want {
			t.Errorf("%s: %d, want %d", what, res.StatusCode, want)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second)) // far below the read timeout
		if _, err := io.Copy(io.Discard, c); errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s: the connection is still open after the answer", what)
		}
	}
	// Over the anonymous body limit, the rest never sent.
	c := dial(t, "127.0.0.2", info)
	io.WriteString(c, head(64<<10)+`{"token":"`+strings.Repeat("a", DefaultAnonBody+1024))
	ended("a body over the limit", c, http.StatusBadRequest)

	// Over the per-address limit, with a body never finished.
	hold := dial(t, "127.0.0.3", info)
	io.WriteString(hold, "GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")
	if res, _ := readResponse(t, hold); res.StatusCode != http.StatusOK {
		t.Fatalf("within the limit: %d", res.StatusCode)
	}
	c = dial(t, "127.0.0.3", info)
	io.WriteString(c, head(1000)+`{"token":`)
	ended("a connection over the per-address limit", c, http.StatusServiceUnavailable)
}
