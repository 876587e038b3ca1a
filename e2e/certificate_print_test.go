package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/drivers/ipp"
	"github.com/kioskfleet/kioskfleet/drivers/ipp/ippeve"
	"github.com/kioskfleet/kioskfleet/hub/cases"
	"github.com/kioskfleet/kioskfleet/hub/httpapi"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// citizenAtKiosk authenticates one token: a citizen's session opened at kiosk k-print.
type citizenAtKiosk struct{}

func (citizenAtKiosk) Authenticate(r *http.Request) (httpapi.Principal, error) {
	if r.Header.Get("Authorization") == "Bearer kiosk-session" {
		return httpapi.Principal{Subject: "c_alice", Roles: []string{"citizen"}, ClientID: "kiosk-shell", KioskID: "k-print"}, nil
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

// TestCertificatePrintedAtKiosk: a department attaches a certificate to a citizen's case; the
// kiosk shell, holding her session's token, fetches it from the hub as PDF and prints it on
// the A4 printer (CUPS's ippeveprinter through the kiosk's IPP driver); the printer receives the
// very bytes the department sent.
func TestCertificatePrintedAtKiosk(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	printer, err := ippeve.Start(ctx, ippeve.Options{Dir: t.TempDir(), Name: "kiosk-a4", Command: "exit 0\n"})
	if errors.Is(err, ippeve.ErrNotInstalled) {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	defer printer.Stop()

	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	room, err := cases.New(cases.Config{Secret: bytes.Repeat([]byte{1}, 32)}, st, cases.NewLocal())
	if err != nil {
		t.Fatal(err)
	}
	hub := httptest.NewServer(httpapi.New(httpapi.Config{Store: st, Auth: citizenAtKiosk{}, Clients: deptClient{}, Cases: room}))
	defer hub.Close()
	do := func(method, path, auth string, body, out any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(ctx, method, hub.URL+api.Prefix+path, bytes.NewReader(b))
		req.Header.Set("Authorization", auth)
		res, err := hub.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		rb, _ := io.ReadAll(res.Body)
		if res.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, rb)
		}
		if out != nil {
			json.Unmarshal(rb, out)
		}
	}
	const deptAuth = "Basic ZGVwdDpkZXB0LXNlY3JldA==" // dept:dept-secret
	var c api.Case
	do("POST", "/cases", deptAuth, api.CreateCase{Ref: "GA-1", Service: "hukou.transfer", Department: "Public Security",
		Title: "Household transfer", CitizenToken: "kiosk-session", Channel: "web"}, &c)
	cert, err := ipp.TestPagePDF(ipp.TestPage{KioskID: "k-print", Printer: "kiosk-a4", Lines: []string{"Certificate of case " + c.ID}})
	if err != nil {
		t.Fatal(err)
	}
	var ev api.CaseEvent
	do("POST", "/cases/"+c.ID+"/documents", deptAuth, api.AddCaseDocument{Kind: "certificate", Name: "certificate.pdf",
		ContentType: "application/pdf", Content: cert}, &ev)
	do("POST", "/cases/"+c.ID+"/status", deptAuth, api.SetCaseStatus{Status: api.CaseAccepted}, nil)

	// The kiosk shell: the certificate, as the citizen's session sees it.
	req, _ := http.NewRequestWithContext(ctx, "GET", hub.URL+api.Prefix+"/me/cases/"+c.ID+"/documents/"+ev.DocumentID, nil)
	req.Header.Set("Authorization", "Bearer kiosk-session")
	res, err := hub.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/pdf" || !bytes.Equal(doc, cert) {
		t.Fatalf("certificate from the hub: %d %s, %d bytes (sent %d)", res.StatusCode, res.Header.Get("Content-Type"), len(doc), len(cert))
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
	if !strings.HasPrefix(string(got), "%PDF-") {
		t.Fatal("not a PDF")
	}
}
