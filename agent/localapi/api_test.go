package localapi_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kioskfleet/kioskfleet/agent/localapi"
	"github.com/kioskfleet/kioskfleet/agent/localapi/localapitest"
	"github.com/kioskfleet/kioskfleet/drivers/escpos/escpossim"
	"github.com/kioskfleet/kioskfleet/drivers/idcard"
	"github.com/kioskfleet/kioskfleet/drivers/idcard/idcardsim"
)

type statusPayload struct {
	Devices []localapi.DeviceView `json:"devices"`
}

func status(t *testing.T, c *localapitest.Client) map[string]localapi.DeviceView {
	t.Helper()
	r := c.Do("Common.Status", nil, 5*time.Second)
	expect(t, r, "success", "")
	var p statusPayload
	r.Completion.Decode(t, &p)
	out := map[string]localapi.DeviceView{}
	for _, d := range p.Devices {
		out[d.Device] = d
	}
	return out
}

// A command gets an acknowledge then a completion, each echoing its name and requestId, with
// the version and (for the completion) the completion code; every message conforms.
func TestCommonStatusAndCapabilities(t *testing.T) {
	k := startKiosk(t, kioskOptions{})
	c := k.dial(t)
	r := c.Do("Common.Status", nil, 5*time.Second)
	for _, m := range []localapitest.Msg{r.Ack, r.Completion} {
		if m.Header.Name != "Common.Status" || m.Header.RequestID != 1 || m.Header.Version != localapi.Version {
			t.Errorf("header %+v", m.Header)
		}
	}
	expect(t, r, "success", "")
	if len(r.Events) != 0 {
		t.Errorf("events for Common.Status: %d", len(r.Events))
	}
	st := status(t, c)
	want := map[string]string{"idcard0": "IdCard", "receipt0": "Printer", "qr0": "BarcodeReader"}
	if len(st) != len(want) {
		t.Fatalf("status lists %v", st)
	}
	for id, svc := range want {
		if d := st[id]; d.Service != svc || !d.Connected || d.Status != "ok" || d.Owner != "" {
			t.Errorf("%s: %+v", id, d)
		}
	}

	r = c.Do("Common.Capabilities", nil, 5*time.Second)
	expect(t, r, "success", "")
	var caps struct {
		App      string                 `json:"app"`
		Services []localapi.ServiceCaps `json:"services"`
		Devices  []map[string]string    `json:"devices"`
	}
	r.Completion.Decode(t, &caps)
	var names []string
	for _, s := range caps.Services {
		names = append(names, s.Name)
	}
	if caps.App != localapi.ShellApp || !slices.Equal(names, []string{"BarcodeReader", "Common", "IdCard", "Login", "Printer", "Scanner"}) || len(caps.Devices) != 3 {
		t.Fatalf("capabilities: %s", r.Completion.Raw)
	}
	if !slices.Contains(caps.Services[1].Commands, "Common.Cancel") || !slices.Contains(caps.Services[1].Events, "Common.StatusChangedEvent") {
		t.Errorf("Common: %+v", caps.Services[1])
	}
}

// Only the shell's origin and registered apps' origins may connect, each from a loopback host
// name; others get a clear HTTP error.
func TestOriginsAndHostsRefused(t *testing.T) {
	const appOrigin = "http://tax.localhost:9000"
	k := startKiosk(t, kioskOptions{apps: localapi.StaticApps{{App: "gov-tax", Origins: []string{appOrigin}, Services: []string{localapi.ServicePrinter}}}})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(k.shell, "http://"))
	for _, tc := range []struct{ origin, body string }{
		{"https://evil.example", `origin "https://evil.example" may not use the kiosk's devices`},
		{"", "an Origin header is required"},
		{"null", `origin "null" may not`},
		{"http://127.0.0.1:1", "may not use"},        // another port of loopback is another origin
		{"https://127.0.0.1:" + port, "may not use"}, // and another scheme
	} {
		c, resp, err := localapitest.Dial(t, k.url, tc.origin)
		if err == nil || c != nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("origin %q: connected (%v, %+v)", tc.origin, err, resp)
		}
		body := make([]byte, 512)
		n, _ := resp.Body.Read(body)
		resp.Body.Close()
		if !strings.Contains(string(body[:n]), tc.body) {
			t.Errorf("origin %q: body %q", tc.origin, body[:n])
		}
	}
	// A page of another name that resolves to 127.0.0.1 (DNS rebinding) is refused too.
	d := websocket.Dialer{NetDial: func(network, _ string) (net.Conn, error) { return net.Dial(network, "127.0.0.1:"+port) }}
	_, resp, err := d.Dial("ws://rebind.example:"+port+localapi.Path, http.Header{"Origin": {"http://rebind.example:" + port}})
	if err == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("another host name: %v %+v", err, resp)
	}
	resp.Body.Close()

	localapitest.MustDial(t, k.url, k.shell)
	localapitest.MustDial(t, k.url, "http://localhost:"+port)
	localapitest.MustDial(t, k.url, appOrigin)
	localapitest.MustDial(t, k.url, strings.ToUpper(appOrigin[:4])+appOrigin[4:]) // origins compare case-insensitively
}

// canaries are what must never reach an app or a log: the cards' numbers and holders' data.
var canaries = []string{idcardsim.CanaryResident, idcardsim.CanaryHKMOTW, idcardsim.CanaryForeign, idcardsim.Canary2023,
	"张三丰", "体育西路", "19900307", idcardsim.CanaryResident[6:14]}

func noCanary(t *testing.T, what string, texts ...string) {
	t.Helper()
	for _, c := range canaries {
		for _, s := range texts {
			if strings.Contains(s, c) {
				t.Errorf("%s contains %q", what, c)
			}
		}
	}
}

func received(c *localapitest.Client) []string {
	var out []string
	for _, b := range c.Received() {
		out = append(out, string(b))
	}
	return out
}

// IdCard.Read gives apps the holder masked, for every card type; the full number and the
// holder's data appear in no message and no log line.
func TestIdCardReadMasked(t *testing.T) {
	k := startKiosk(t, kioskOptions{card: idcardsim.Resident()})
	c := k.dial(t)
	for _, tc := range []struct {
		card     *idcardsim.Card
		number   string
		cardType string
	}{
		{idcardsim.Resident(), idcardsim.CanaryResident, "resident"},
		{idcardsim.HKMOTW(), idcardsim.CanaryHKMOTW, "hk-mo-tw-residence-permit"},
		{idcardsim.Foreigner2017(), idcardsim.CanaryForeign, "foreigner-permanent-residence-2017"},
		{idcardsim.Foreigner2023(), idcardsim.Canary2023, "foreigner-permanent-residence-2023"},
	} {
		k.card.SetCard(tc.card)
		r := c.Do("IdCard.Read", nil, 10*time.Second)
		expect(t, r, "success", "")
		var p struct {
			Device string
			Holder localapi.Holder
		}
		r.Completion.Decode(t, &p)
		if p.Device != "idcard0" || p.Holder.CardType != tc.cardType || p.Holder.Number != idcard.MaskNumber(tc.number) {
			t.Errorf("%s: %s", tc.cardType, r.Completion.Raw)
		}
		if tc.cardType == "resident" && p.Holder.Name != "张*丰" {
			t.Errorf("name shown as %q", p.Holder.Name)
		}
	}
	noCanary(t, "a message to the app", received(c)...)
	noCanary(t, "the logs", k.logs.String())
	if !strings.Contains(k.logs.String(), `"name":"IdCard.Read"`) {
		t.Error("commands are not logged")
	}
}

func TestMaskName(t *testing.T) {
	for in, want := range map[string]string{"张三丰": "张*丰", "张三": "张*", "欧阳锋锋": "欧**锋", "李": "*", "": "", "JOHN SMITH": "J********H"} {
		if got := localapi.MaskName(in); got != want {
			t.Errorf("MaskName(%q) = %q, want %q", in, got, want)
		}
	}
}

// IdCard.Read waits for a tap (telling the app it waits), honours the command's timeout, and is
// canceled by Common.Cancel.
func TestIdCardWaitTimeoutCancel(t *testing.T) {
	k := startKiosk(t, kioskOptions{})
	c := k.dial(t)

	r := c.Do("IdCard.Read", nil, 300*time.Millisecond)
	expect(t, r, "timeOut", "")
	if len(r.Events) != 1 || r.Events[0].Header.Name != "IdCard.InsertCardEvent" {
		t.Errorf("events: %d", len(r.Events))
	}

	id := c.Send("IdCard.Read", map[string]string{"device": "idcard0"}, 20*time.Second)
	c.Next(5*time.Second, localapitest.Of(id, "event"))
	k.card.SetCard(idcardsim.Resident())
	expect(t, c.Await(id, 20*time.Second), "success", "")

	k.card.SetCard(nil)
	id = c.Send("IdCard.Read", nil, 0)
	c.Next(5*time.Second, localapitest.Of(id, "event"))
	cr := c.Do("Common.Cancel", map[string][]int64{"requestIds": {id, 999}}, 5*time.Second)
	expect(t, cr, "success", "")
	var canceled struct{ Canceled []int64 }
	cr.Completion.Decode(t, &canceled)
	if !slices.Equal(canceled.Canceled, []int64{id}) {
		t.Errorf("canceled %v", canceled.Canceled)
	}
	r = c.Await(id, 5*time.Second)
	expect(t, r, "canceled", "")

	expect(t, c.Do("IdCard.Read", nil, 10*time.Minute), "timeoutNotSupported", "")
}

// One app at a time owns a device: while its command runs, and from Common.Acquire until
// Common.Release or until it disconnects.
func TestOwnership(t *testing.T) {
	k := startKiosk(t, kioskOptions{})
	a, b := k.dial(t), k.dial(t)

	ida := a.Send("BarcodeReader.Read", nil, 0)
	waitFor(t, 5*time.Second, "a owns qr0", func() bool { return status(t, b)["qr0"].Owner == "another app" })
	expect(t, b.Do("BarcodeReader.Read", nil, 2*time.Second), "sequenceError", "deviceInUse")
	expect(t, a.Do("BarcodeReader.Read", nil, 2*time.Second), "sequenceError", "deviceBusy")
	if o := status(t, a)["qr0"].Owner; o != "you" {
		t.Errorf("a sees owner %q", o)
	}
	stop := scanning(k, "CODE-1")
	r := a.Await(ida, 10*time.Second)
	stop()
	expect(t, r, "success", "")
	waitFor(t, 5*time.Second, "qr0 released", func() bool { return status(t, b)["qr0"].Owner == "" })

	receipt := map[string]any{"lines": []string{"排队号 A017"}, "qrCode": "A017"}
	expect(t, a.Do("Common.Acquire", map[string]string{"device": "receipt0"}, 5*time.Second), "success", "")
	expect(t, b.Do("Printer.PrintReceipt", receipt, 5*time.Second), "sequenceError", "deviceInUse")
	expect(t, b.Do("Common.Acquire", map[string]string{"device": "receipt0"}, 5*time.Second), "sequenceError", "deviceInUse")
	expect(t, b.Do("Common.Release", map[string]string{"device": "receipt0"}, 5*time.Second), "sequenceError", "notAcquired")
	expect(t, a.Do("Printer.PrintReceipt", receipt, 10*time.Second), "success", "") // the owner prints
	a.Conn.Close()
	waitFor(t, 5*time.Second, "receipt0 released at disconnect", func() bool { return status(t, b)["receipt0"].Owner == "" })
	expect(t, b.Do("Printer.PrintReceipt", receipt, 10*time.Second), "success", "")
	expect(t, b.Do("Common.Acquire", map[string]string{"device": "receipt0"}, 5*time.Second), "success", "")
	expect(t, b.Do("Common.Release", map[string]string{"device": "receipt0"}, 5*time.Second), "success", "")
	if o := status(t, b)["receipt0"].Owner; o != "" {
		t.Errorf("after release: owner %q", o)
	}
	if got := strings.Count(k.receipt.Text(), "排队号 A017"); got != 2 || k.receipt.Cuts() != 2 || len(k.receipt.QRCodes()) != 2 {
		t.Errorf("printer got %q, %d cuts, QR %q", k.receipt.Text(), k.receipt.Cuts(), k.receipt.QRCodes())
	}
}

// scanning scans code on the kiosk's QR scanner every 50 ms until stop is called: a scan counts
// only while a command waits for it.
func scanning(k *kiosk, code string) (stop func()) {
	done, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			k.qr.Scan(code)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-ended }
}

// An app gets only the services its manifest asks for: other commands are refused and other
// devices are not shown.
func TestAppOnlyGetsItsServices(t *testing.T) {
	const origin = "http://print.localhost:9000"
	k := startKiosk(t, kioskOptions{apps: localapi.StaticApps{{App: "gov-print", Origins: []string{origin}, Services: []string{localapi.ServicePrinter}}}})
	c := localapitest.MustDial(t, k.url, origin)
	for _, name := range []string{"IdCard.Read", "BarcodeReader.Read", "Login.IdCard", "Scanner.Scan"} {
		r := c.Do(name, nil, 2*time.Second)
		expect(t, r, "unsupportedCommand", "notPermitted")
		if !strings.Contains(r.Completion.Header.ErrorDescription, "gov-print") {
			t.Errorf("%s: %s", name, r.Completion.Raw)
		}
	}
	if st := status(t, c); len(st) != 1 || st["receipt0"].Device == "" {
		t.Errorf("status shows %v", st)
	}
	expect(t, c.Do("Common.Acquire", map[string]string{"device": "idcard0"}, 2*time.Second), "invalidData", "")
	expect(t, c.Do("Printer.PrintReceipt", map[string]any{"lines": []string{"ok"}}, 10*time.Second), "success", "")
}

// Malformed messages get an error completion, or an error acknowledge when no requestId can be
// read; the connection and the agent go on.
func TestMalformedMessages(t *testing.T) {
	k := startKiosk(t, kioskOptions{config: func(c *localapi.Config) { c.MaxMessageBytes = 64 << 10; c.MaxInFlight = 2 }})
	c := k.dial(t)
	hdr := func(id int, extra string) string {
		return `{"header":{"name":"Common.Status","requestId":` + itoa(id) + `,"type":"command","version":"1.0"` + extra + `},"payload":{}}`
	}
	cmd := func(id int, name, payload string) string {
		return `{"header":{"name":"` + name + `","requestId":` + itoa(id) + `,"type":"command","version":"1.0"},"payload":` + payload + `}`
	}
	for _, tc := range []struct {
		raw    string
		id     int64
		status string // of the acknowledge, for messages refused without a completion
		code   string // of the completion otherwise
	}{
		{raw: `not json`, status: "invalidMessage"},
		{raw: `{}`, status: "invalidMessage"},
		{raw: `[1,2]`, status: "invalidMessage"},
		{raw: `{"header":null,"payload":{}}`, status: "invalidMessage"},
		{raw: `{"header":{"name":"Common.Status","type":"command","version":"1.0"},"payload":{}}`, status: "invalidRequestID"},
		{raw: strings.Replace(hdr(0, ""), `"requestId":0`, `"requestId":"7"`, 1), status: "invalidRequestID"},
		{raw: hdr(0, ""), status: "invalidRequestID"},
		{raw: hdr(-3, ""), status: "invalidRequestID"},
		{raw: hdr(7, "") + `{}`, id: 7, status: "invalidMessage"},
		{raw: strings.TrimSuffix(hdr(8, ""), "}") + `,"extra":1}`, id: 8, status: "invalidMessage"},
		{raw: strings.Replace(hdr(9, ""), `"command"`, `"event"`, 1), id: 9, code: "invalidData"},
		{raw: cmd(10, "Nope.Nothing", "{}"), id: 10, code: "invalidCommand"},
		{raw: cmd(11, "bad name", "{}"), id: 11, code: "invalidData"},
		{raw: strings.Replace(hdr(12, ""), `"1.0"`, `"2.0"`, 1), id: 12, code: "unsupportedData"},
		{raw: hdr(13, `,"timeout":-5`), id: 13, code: "invalidData"},
		{raw: hdr(14, `,"timeout":"soon"`), id: 14, code: "invalidData"},
		{raw: hdr(15, `,"bogus":1`), id: 15, code: "invalidData"},
		{raw: cmd(16, "Common.Status", "[]"), id: 16, code: "invalidData"},
		{raw: cmd(17, "Common.Status", `{"bogus":1}`), id: 17, code: "invalidData"},
		{raw: cmd(18, "IdCard.Read", `{"device":5}`), id: 18, code: "invalidData"},
		{raw: cmd(19, "IdCard.Read", `{"device":"nope"}`), id: 19, code: "invalidData"},
		{raw: cmd(20, "IdCard.Read", `{"device":"receipt0"}`), id: 20, code: "unsupportedData"},
		{raw: cmd(21, "Printer.PrintNative", `{"data":"%%%"}`), id: 21, code: "invalidData"},
		{raw: cmd(22, "Printer.PrintNative", `{"data":"aGVsbG8="}`), id: 22, code: "invalidData"},
		{raw: cmd(23, "Printer.PrintReceipt", `{"lines":["\u001b@"]}`), id: 23, code: "invalidData"},
		{raw: cmd(24, "Printer.PrintReceipt", `{}`), id: 24, code: "invalidData"},
		{raw: cmd(25, "Common.Acquire", `{"device":"nope"}`), id: 25, code: "invalidData"},
		{raw: hdr(26, `,"timeout":600000`), id: 26, code: "timeoutNotSupported"},
		{raw: cmd(27, "Printer.PrintNative", `{"data":"JVBERi0=","format":"text/plain"}`), id: 27, code: "unsupportedData"},
	} {
		c.SendRaw([]byte(tc.raw))
		if tc.status != "" {
			m := c.Next(5*time.Second, func(m localapitest.Msg) bool { return m.Header.RequestID == tc.id })
			if m.Header.Type != "acknowledge" || m.Header.Status != tc.status || m.Header.ErrorDescription == "" {
				t.Errorf("%s: %s", tc.raw, m.Raw)
			}
			continue
		}
		r := c.Await(tc.id, 5*time.Second)
		if r.Code() != tc.code || r.Ack.Header.Status != "" {
			t.Errorf("%s: %s / %s", tc.raw, r.Ack.Raw, r.Completion.Raw)
		}
	}
	if err := c.Conn.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if m := c.Next(5*time.Second, localapitest.Of(0, "acknowledge")); m.Header.Status != "invalidMessage" {
		t.Errorf("binary message: %s", m.Raw)
	}

	// A requestId in use, and too many commands at once.
	waiting := c.Send("IdCard.Read", nil, 0)
	c.SendRaw([]byte(hdr(int(waiting), "")))
	if m := c.Next(5*time.Second, func(m localapitest.Msg) bool { return m.Header.Status != "" }); m.Header.Status != "invalidRequestID" || m.Header.RequestID != waiting {
		t.Errorf("requestId in use: %s", m.Raw)
	}
	scan := c.Send("BarcodeReader.Read", nil, 0)
	c.SendRaw([]byte(hdr(500, "")))
	if m := c.Next(5*time.Second, localapitest.Of(500, "acknowledge")); m.Header.Status != "tooManyRequests" {
		t.Errorf("third command: %s", m.Raw)
	}
	expect(t, c.Do("Common.Cancel", nil, 5*time.Second), "success", "") // at the limit? Cancel is one of two
	expect(t, c.Await(waiting, 5*time.Second), "canceled", "")
	expect(t, c.Await(scan, 5*time.Second), "canceled", "")
	status(t, c) // the connection goes on

	// A message over the limit closes the connection; the agent goes on.
	_ = c.Conn.WriteMessage(websocket.TextMessage, []byte(cmd(600, "Common.Status", `{"x":"`+strings.Repeat("a", 70<<10)+`"}`)))
	_, err := c.TryNext(5*time.Second, func(localapitest.Msg) bool { return false })
	if ce, ok := err.(*websocket.CloseError); (ok && ce.Code != websocket.CloseMessageTooBig) || err == nil {
		t.Errorf("oversized message: %v", err) // a close 1009, or a reset when the client was still writing
	}
	waitFor(t, 5*time.Second, "oversized message logged", func() bool { return strings.Contains(k.logs.String(), "message too large") })
	status(t, k.dial(t))
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// EndSessions closes every connection, canceling their commands and releasing their devices;
// Shutdown does that and refuses new connections.
func TestEndSessionsAndShutdown(t *testing.T) {
	k := startKiosk(t, kioskOptions{})
	a, b := k.dial(t), k.dial(t)
	a.Send("BarcodeReader.Read", nil, 0)
	waitFor(t, 5*time.Second, "a owns qr0", func() bool { return status(t, b)["qr0"].Owner == "another app" })
	if n := k.api.EndSessions(); n != 2 {
		t.Errorf("EndSessions closed %d", n)
	}
	for _, c := range []*localapitest.Client{a, b} {
		_, err := c.TryNext(5*time.Second, func(localapitest.Msg) bool { return false })
		if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseNormalClosure {
			t.Errorf("after EndSessions: %v", err)
		}
	}
	c := k.dial(t)
	waitFor(t, 5*time.Second, "qr0 released", func() bool { return status(t, c)["qr0"].Owner == "" })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := k.api.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TryNext(5*time.Second, func(localapitest.Msg) bool { return false }); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("after Shutdown: %v", err)
	}
	if _, resp, err := localapitest.Dial(t, k.url, k.shell); err == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dial after Shutdown: %v", err)
	}
}

// A receipt printer that runs out of paper: the apps hear it unsolicited (status, paper
// threshold), a receipt is refused with paperOut and Printer.NoMediaEvent; with paper it prints.
func TestReceiptPaperOut(t *testing.T) {
	k := startKiosk(t, kioskOptions{})
	c := k.dial(t)
	status(t, c)
	k.receipt.SetFault(escpossim.PaperOut, true)
	m := c.Next(10*time.Second, func(m localapitest.Msg) bool {
		return m.Header.Name == "Common.StatusChangedEvent" && strings.Contains(string(m.Payload), `"device":"receipt0"`)
	})
	var v localapi.DeviceView
	m.Decode(t, &v)
	if v.Status != "fault" || !slices.Contains(v.Reasons, "paper-out") || m.Header.RequestID != 0 || m.Header.Type != "unsolicited" {
		t.Errorf("status event: %s", m.Raw)
	}
	m = c.Next(10*time.Second, localapitest.Named("Printer.PaperThresholdEvent", "unsolicited"))
	if !strings.Contains(string(m.Payload), `"threshold":"out"`) {
		t.Errorf("threshold event: %s", m.Raw)
	}
	r := c.Do("Printer.PrintReceipt", map[string]any{"lines": []string{"回执"}}, 10*time.Second)
	expect(t, r, "commandErrorCode", "paperOut")
	if len(r.Events) != 1 || r.Events[0].Header.Name != "Printer.NoMediaEvent" {
		t.Errorf("events: %v", r.Events)
	}
	k.receipt.SetFault(escpossim.PaperOut, false)
	c.Next(10*time.Second, func(m localapitest.Msg) bool {
		return m.Header.Name == "Printer.PaperThresholdEvent" && strings.Contains(string(m.Payload), `"threshold":"full"`)
	})
	expect(t, c.Do("Printer.PrintReceipt", map[string]any{"lines": []string{"回执"}}, 10*time.Second), "success", "")
	if !strings.Contains(k.receipt.Text(), "回执") || k.receipt.Cuts() != 1 {
		t.Errorf("printer got %q", k.receipt.Text())
	}
}

// BarcodeReader.Read returns the code scanned while it waits; the code (a login token, maybe)
// is never logged.
func TestBarcodeRead(t *testing.T) {
	k := startKiosk(t, kioskOptions{})
	c := k.dial(t)
	const code = "kf-login-token-CANARY-7f3a"
	id := c.Send("BarcodeReader.Read", nil, 10*time.Second)
	stop := scanning(k, code)
	r := c.Await(id, 15*time.Second)
	stop()
	expect(t, r, "success", "")
	var p struct {
		ReadOutput []struct{ Symbology, Text string }
	}
	r.Completion.Decode(t, &p)
	if len(p.ReadOutput) != 1 || p.ReadOutput[0].Text != code {
		t.Fatalf("read %s", r.Completion.Raw)
	}
	if strings.Contains(k.logs.String(), "CANARY") {
		t.Error("a scanned code reached the log")
	}
	expect(t, c.Do("BarcodeReader.Read", nil, 200*time.Millisecond), "timeOut", "")

	// Unplugged: the apps hear it, and a read is refused as deviceNotReady.
	os.Remove(k.qrPath) // as udev does
	k.qr.Unplug()
	c.Next(10*time.Second, func(m localapitest.Msg) bool {
		var v localapi.DeviceView
		m.Decode(t, &v)
		return m.Header.Name == "Common.StatusChangedEvent" && v.Device == "qr0" && !v.Connected && slices.Contains(v.Reasons, "disconnected")
	})
	expect(t, c.Do("BarcodeReader.Read", nil, 5*time.Second), "deviceNotReady", "")
}
