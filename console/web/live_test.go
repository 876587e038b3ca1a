package web_test

import (
	"crypto/tls"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"

	"github.com/kioskfleet/kioskfleet/console/web"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

// liveSocket opens the live WebSocket of a page (its live URL) in the browser b.
func (b *staffBrowser) liveSocket(page string, header http.Header) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{Jar: b.c.Jar, TLSClientConfig: &tls.Config{RootCAs: b.sc.roots}, HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial("wss://"+strings.TrimPrefix(b.sc.url, "https://")+"/live?page="+url.QueryEscape(page), header)
	if err == nil {
		b.sc.t.Cleanup(func() { conn.Close() })
	}
	return conn, resp, err
}

// readUntil reads the socket's messages until one satisfies ok, within d.
func readUntil(t *testing.T, conn *websocket.Conn, d time.Duration, what string, ok func(string) bool) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(d))
	var last string
	for {
		_, m, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("%s: not within %v: %v; last message %.600s", what, d, err, last)
		}
		if last = string(m); ok(last) {
			return last
		}
	}
}

// connectKiosk connects an enrolled kiosk to the hub's broker over mutual TLS, as its agent does.
func (sc *staffConsole) connectKiosk(id string) paho.Client {
	sc.t.Helper()
	o := paho.NewClientOptions().AddBroker("ssl://" + sc.hub.MQTTAddr).SetClientID(id).
		SetTLSConfig(&tls.Config{RootCAs: sc.roots, Certificates: []tls.Certificate{sc.certs[id]}}).SetProtocolVersion(4).
		SetCleanSession(true).SetKeepAlive(30 * time.Second).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		sc.t.Fatalf("kiosk %s connect: %v", id, tok.Error())
	}
	sc.t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// TestLivePage: a logged-in engineer's devices page gets its update over the WebSocket when
// their kiosk connects to the hub (the hub's event stream, not a timer: the console redraws on a
// timer only every 30 s), within 3 s; the socket is refused to another origin and without a
// session, and is closed at logout.
func TestLivePage(t *testing.T) {
	sc := newStaffConsole(t)
	ctx := t.Context()
	for _, s := range []fleet.Site{{ID: "futian-1", Name: "福田", Region: "440304"}, {ID: "nanshan-1", Name: "南山", Region: "440305"}} {
		if _, err := sc.admin.CreateSite(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	futian, nanshan := sc.enroll("futian-1"), sc.enroll("nanshan-1")
	adm := sc.browser()
	adm.login("admin", sc.hub.Credentials["admin password (user admin)"], "/")
	sc.admin = &api.Client{BaseURL: sc.admin.BaseURL, HTTP: sc.admin.HTTP, Token: web.AccessTokens(sc.srv)[0]}
	eng := sc.browser()
	eng.login("nanshan1", sc.staff("nanshan1", []string{"fieldops"}, "440305"), "/devices")

	if _, resp, err := sc.browser().liveSocket("/devices?live=1", nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("live socket without a session: %v %v", resp, err)
	}
	if _, resp, err := eng.liveSocket("/devices?live=1", http.Header{"Origin": {"https://evil.example"}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("live socket from another origin: %v %v", resp, err)
	}
	if _, resp, err := eng.liveSocket("//evil.example/?live=1", nil); err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("live socket of another site's page: %v %v", resp, err)
	}

	conn, _, err := eng.liveSocket("/devices?live=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	first := readUntil(t, conn, 10*time.Second, "first update", func(m string) bool { return strings.Contains(m, nanshan) })
	if strings.Contains(first, futian) || !strings.Contains(first, `lv-offline`) {
		t.Fatalf("first update: %.600s", first)
	}
	sc.connectKiosk(futian) // another county's: nothing for this page
	start := time.Now()
	sc.connectKiosk(nanshan)
	m := readUntil(t, conn, 3*time.Second, "the kiosk online", func(m string) bool { return !strings.Contains(m, "lv-offline") })
	if strings.Contains(m, futian) || !strings.Contains(m, nanshan) {
		t.Fatalf("update: %.600s", m)
	}
	t.Logf("kiosk online on the live page after %v", time.Since(start))

	// Logout closes the live page (policy violation: the browser does not reconnect).
	csrf := csrfField.FindStringSubmatch(eng.get("/devices/" + nanshan).body)
	if r := eng.do(http.MethodPost, "/logout", url.Values{"csrf": {csrf[1]}}); r.status != http.StatusSeeOther {
		t.Fatalf("logout: %d", r.status)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := conn.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) && ce.Code == websocket.ClosePolicyViolation {
			break
		}
		if err != nil {
			t.Fatalf("after logout: %v", err)
		}
	}
}
