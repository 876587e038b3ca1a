package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/journal"
	"github.com/kioskfleet/kioskfleet/agent/kiosklogin"
	"github.com/kioskfleet/kioskfleet/agent/localapi"
	"github.com/kioskfleet/kioskfleet/agent/outbox"
	"github.com/kioskfleet/kioskfleet/agent/shell"
	"github.com/kioskfleet/kioskfleet/drivers/ipp"
	"github.com/kioskfleet/kioskfleet/drivers/ipp/ippeve"
	"github.com/kioskfleet/kioskfleet/hub/cases"
	"github.com/kioskfleet/kioskfleet/hub/httpapi"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// citizenTokens authenticates Alice's tokens: her session opened at kiosk k-print (ID card), and
// her sessions on the web and in the mobile app.
type citizenTokens struct{}

func (citizenTokens) Authenticate(r *http.Request) (httpapi.Principal, error) {
	switch r.Header.Get("Authorization") {
	case "Bearer kiosk-session":
		return httpapi.Principal{Subject: "c_alice", Roles: []string{"citizen"}, ClientID: "kiosk-shell", KioskID: "k-print", Audience: []string{httpapi.AudienceCitizen}}, nil
	case "Bearer web-session":
		return httpapi.Principal{Subject: "c_alice", Roles: []string{"citizen"}, ClientID: "web-portal", Audience: []string{httpapi.AudienceCitizen}}, nil
	case "Bearer mobile-session":
		return httpapi.Principal{Subject: "c_alice", Roles: []string{"citizen"}, ClientID: "mobile-app", Audience: []string{httpapi.AudienceCitizen}}, nil
	}
	return httpapi.Principal{}, httpapi.ErrUnauthenticated
}

type deptClient struct{}

func (deptClient) AuthenticateClient(_ context.Context, id, secret string) (store.Client, error) {
	if id == "dept" && secret == "dept-secret" {
		return store.Client{ID: id}, nil
	}
	return store.Client{}, httpapi.ErrUnauthenticated
}

// caseKiosk is the hub's department API and citizens' endpoints (hub/cases over HTTPS, Alice's
// tokens of citizenTokens) and a kiosk shell relaying her case events from it, with Alice's
// ID-card session open and a page client holding its cookie; stopped with tb.
type caseKiosk struct {
	tb        testing.TB
	ctx       context.Context
	hub       *httptest.Server
	hubClient *shell.HubClient
	kiosk     *httptest.Server
	page      *http.Client
}

func newCaseKiosk(tb testing.TB, ctx context.Context) *caseKiosk {
	tb.Helper()
	k := &caseKiosk{tb: tb, ctx: ctx}
	st, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "hub.db"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	room, err := cases.New(cases.Config{Secret: bytes.Repeat([]byte{1}, 32)}, st, cases.NewLocal())
	if err != nil {
		tb.Fatal(err)
	}
	k.hub = httptest.NewTLSServer(httpapi.New(httpapi.Config{Store: st, Auth: citizenTokens{}, Clients: deptClient{}, Cases: room}))
	tb.Cleanup(k.hub.Close)
	k.hubClient = &shell.HubClient{API: &api.Client{BaseURL: k.hub.URL, HTTP: k.hub.Client()}, DeviceID: "k-print"}

	ob, err := outbox.Open(ctx, filepath.Join(tb.TempDir(), "outbox.db"), outbox.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ob.Close() })
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	j, err := journal.Open(ctx, ob, journal.Options{Key: key})
	if err != nil {
		tb.Fatal(err)
	}
	sh, err := shell.New(shell.Config{Dir: tb.TempDir(), Journal: j, Hub: k.hubClient, DeviceID: "k-print", Espeak: "no-such-espeak",
		Settings: func() (time.Duration, string) { return time.Hour, "" }, EndConnections: func() int { return 0 }})
	if err != nil {
		tb.Fatal(err)
	}
	shellCtx, stopShell := context.WithCancel(ctx)
	shellDone := make(chan struct{})
	go func() { defer close(shellDone); sh.Run(shellCtx) }()
	k.kiosk = httptest.NewServer(sh)
	tb.Cleanup(func() { k.kiosk.Close(); stopShell(); <-shellDone })
	jar, _ := cookiejar.New(nil)
	k.page = &http.Client{Jar: jar}
	login := sh.Authenticator(localapi.AuthenticatorFunc(func(context.Context, wire.IDCard) (kiosklogin.Session, error) {
		return kiosklogin.Session{AccessToken: "kiosk-session", ExpiresIn: time.Hour}, nil
	}))
	if _, err := login.LoginIDCard(ctx, wire.IDCard{Number: []byte("11010519491231002X"), Name: "张三"}); err != nil {
		tb.Fatal(err)
	}
	k.shellJSON("GET", "state", nil) // the page learns its session (cookie)
	return k
}

// dept calls the department API as the department's system.
func (k *caseKiosk) dept(method, path string, body, out any) {
	k.tb.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(k.ctx, method, k.hub.URL+api.Prefix+path, bytes.NewReader(b))
	req.SetBasicAuth("dept", "dept-secret")
	res, err := k.hub.Client().Do(req)
	if err != nil {
		k.tb.Fatal(err)
	}
	defer res.Body.Close()
	rb, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		k.tb.Fatalf("%s %s: %d %s", method, path, res.StatusCode, rb)
	}
	if out != nil {
		json.Unmarshal(rb, out)
	}
}

// shellGet sends a GET to the shell's API as its page does.
func (k *caseKiosk) shellGet(ctx context.Context, path string) (*http.Response, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", k.kiosk.URL+"/shell/api/"+path, nil)
	req.Header.Set(shell.Header, "1")
	return k.page.Do(req)
}

// shellJSON calls the shell's API as its page does, decodes a 200 answer into out and returns
// the status.
func (k *caseKiosk) shellJSON(method, path string, out any) int {
	k.tb.Helper()
	req, _ := http.NewRequestWithContext(k.ctx, method, k.kiosk.URL+"/shell/api/"+path, nil)
	req.Header.Set(shell.Header, "1")
	res, err := k.page.Do(req)
	if err != nil {
		k.tb.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			k.tb.Fatalf("%s %s: %v in %q", method, path, err, b)
		}
	}
	return res.StatusCode
}

// TestCaseProgressAndCertificateAtKiosk: a department files a case for a citizen who applied at a
// kiosk and moves it through the department API; each update reaches her on the web, in the
// mobile app (the hub's case stream) and in the kiosk shell of her ID-card session (relayed by
// the agent from the hub), whose case screen shows her real case. The certificate the
// department attaches is offered by the shell as a material, fetched through it and printed on
// the A4 printer (CUPS's ippeveprinter through the kiosk's IPP driver), which receives the very
// bytes the department sent. At logout the shell's stream ends and her cases are gone.
func TestCaseProgressAndCertificateAtKiosk(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	printer, err := ippeve.Start(ctx, ippeve.Options{Dir: t.TempDir(), Name: "kiosk-a4", Command: "exit 0\n"})
	if errors.Is(err, ippeve.ErrNotInstalled) {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	defer printer.Stop()

	ck := newCaseKiosk(t, ctx)
	hubClient, do, shellGet, shellJSON := ck.hubClient, ck.dept, ck.shellGet, ck.shellJSON

	var c api.Case
	do("POST", "/cases", api.CreateCase{Ref: "GA-1", Service: "hukou.transfer", Department: "Public Security",
		Title: "Household transfer", CitizenToken: "kiosk-session"}, &c)
	type view struct {
		Demo  bool
		After int64
		Cases []struct {
			ID, Status string
			Steps      []struct{ Done bool }
		}
	}
	var v view
	if status := shellJSON("GET", "cases", &v); status != http.StatusOK || v.Demo || len(v.Cases) != 1 || v.Cases[0].ID != c.ID ||
		v.Cases[0].Status != api.CaseSubmitted || !v.Cases[0].Steps[0].Done || v.Cases[0].Steps[1].Done || v.After == 0 {
		t.Fatalf("the shell's cases: %d %+v", status, v)
	}

	// Her three channels follow the case: web, mobile (the hub's stream), the kiosk shell (its own).
	seen := map[string]chan api.CaseEvent{"web": make(chan api.CaseEvent, 16), "mobile": make(chan api.CaseEvent, 16), "kiosk": make(chan api.CaseEvent, 16)}
	watchCtx, stopWatch := context.WithCancel(ctx)
	var watchers sync.WaitGroup
	defer func() { stopWatch(); watchers.Wait() }()
	for ch, tok := range map[string]string{"web": "web-session", "mobile": "mobile-session"} {
		watchers.Go(func() {
			_ = hubClient.WatchCases(watchCtx, tok, v.After, func(ev api.CaseEvent) error { seen[ch] <- ev; return nil })
		})
	}
	stream, err := shellGet(watchCtx, fmt.Sprintf("case-events?after=%d", v.After))
	if err != nil || stream.StatusCode != http.StatusOK || stream.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("the shell's case stream: %v %v", err, stream)
	}
	kioskEnded := make(chan struct{})
	watchers.Go(func() {
		defer close(kioskEnded)
		defer stream.Body.Close()
		sc := bufio.NewScanner(stream.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var ev api.CaseEvent
				if json.Unmarshal([]byte(data), &ev) == nil {
					seen["kiosk"] <- ev
				}
			}
		}
	})
	expect := func(what string, ok func(api.CaseEvent) bool) {
		t.Helper()
		for ch, evs := range seen {
			select {
			case ev := <-evs:
				if !ok(ev) {
					t.Fatalf("%s: %s got %+v", what, ch, ev)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: nothing reached %s", what, ch)
			}
		}
	}
	do("POST", "/cases/"+c.ID+"/status", api.SetCaseStatus{Status: api.CaseAccepted, Note: "accepted at the desk"}, nil)
	expect("accepted", func(ev api.CaseEvent) bool {
		return ev.CaseID == c.ID && ev.Status == api.CaseAccepted && ev.Note == "accepted at the desk"
	})

	cert, err := ipp.TestPagePDF(ipp.TestPage{KioskID: "k-print", Printer: "kiosk-a4", Lines: []string{"Certificate of case " + c.ID}})
	if err != nil {
		t.Fatal(err)
	}
	var docEv api.CaseEvent
	do("POST", "/cases/"+c.ID+"/documents", api.AddCaseDocument{Kind: "certificate", Name: "certificate.pdf",
		ContentType: "application/pdf", Content: cert}, &docEv)
	expect("certificate", func(ev api.CaseEvent) bool { return ev.DocumentID == docEv.DocumentID })
	for _, st := range []string{api.CaseInReview, api.CaseApproved} {
		do("POST", "/cases/"+c.ID+"/status", api.SetCaseStatus{Status: st}, nil)
		expect(st, func(ev api.CaseEvent) bool { return ev.Status == st })
	}
	do("POST", "/cases/"+c.ID+"/status", api.SetCaseStatus{Status: api.CaseCertificateReady}, nil)
	expect("certificate ready", func(ev api.CaseEvent) bool { return ev.Status == api.CaseCertificateReady })
	if shellJSON("GET", "cases", &v); len(v.Cases) != 1 || v.Cases[0].Status != api.CaseCertificateReady {
		t.Fatalf("the shell's cases after the updates: %+v", v)
	}

	// The shell offers the certificate among the materials, and serves its bytes to print.
	var ms struct{ Materials []shell.Material }
	shellJSON("GET", "materials", &ms)
	var certID string
	for _, m := range ms.Materials {
		if m.Kind == "case" {
			certID = m.ID
		}
	}
	if certID == "" {
		t.Fatalf("no certificate among the materials %+v", ms)
	}
	res, err := shellGet(ctx, "materials/"+certID)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/pdf" || !bytes.Equal(doc, cert) {
		t.Fatalf("certificate through the shell: %d %s, %d bytes (sent %d)", res.StatusCode, res.Header.Get("Content-Type"), len(doc), len(cert))
	}
	cl, err := ipp.New(printer.URI, &http.Client{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cl.PollInterval = 100 * time.Millisecond
	job, err := cl.Print(ctx, doc, ipp.JobOptions{Name: "certificate " + c.ID})
	if err != nil {
		t.Fatalf("print: %v\n%s", err, printer.Log())
	}
	if job.State != ipp.JobCompleted {
		t.Fatalf("job %+v\n%s", job, printer.Log())
	}
	files, err := printer.JobFiles("*.pdf")
	if err != nil || len(files) != 1 {
		t.Fatalf("spool: %v, %v", files, err)
	}
	got, _ := os.ReadFile(files[0])
	if !bytes.Equal(got, cert) {
		t.Fatalf("the printer got %d bytes, not the certificate's %d", len(got), len(cert))
	}

	// Logout: the shell's stream ends, her cases are no longer there.
	shellJSON("POST", "session/end", nil)
	select {
	case <-kioskEnded:
	case <-time.After(10 * time.Second):
		t.Fatal("the shell's case stream outlived the session")
	}
	if status := shellJSON("GET", "cases", nil); status != http.StatusUnauthorized {
		t.Fatalf("cases after logout: %d", status)
	}
}
