package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/store/sqlite"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// call sends a request with an Authorization header and decodes a JSON answer into out.
func (e *evEnv) call(t testing.TB, method, path, auth string, body, out any) (int, api.Error) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.srv.URL+api.Prefix+path, rd)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		var eb api.ErrorBody
		if err := json.Unmarshal(b, &eb); err != nil {
			t.Fatalf("%s %s: status %d, body %q", method, path, res.StatusCode, b)
		}
		return res.StatusCode, eb.Error
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %q", method, path, err, b)
		}
	}
	return res.StatusCode, api.Error{}
}

// subscriber reads a citizen's case stream as a channel would.
type subscriber struct {
	events chan api.CaseEvent
	cancel context.CancelFunc
	done   chan struct{}
}

func (e *evEnv) subscribe(t testing.TB, token, lastID string) *subscriber {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+api.Prefix+"/me/case-events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	s := &subscriber{events: make(chan api.CaseEvent, 100), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var ev api.CaseEvent
				if json.Unmarshal([]byte(data), &ev) == nil {
					s.events <- ev
				}
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-s.done })
	return s
}

func (s *subscriber) next(t testing.TB) api.CaseEvent {
	t.Helper()
	select {
	case ev := <-s.events:
		return ev
	case <-time.After(wait):
		t.Fatal("no case event")
		return api.CaseEvent{}
	}
}

const dept = "Basic ZGVwdDpkZXB0LXNlY3JldA==" // dept:dept-secret

// pdf is a small certificate.
var pdf = []byte("%PDF-1.4\n% 证明 certificate of the test\n%%EOF\n")

// TestCaseProgressEveryChannel: a department files a case for the citizen who applied at a
// kiosk, and each update it makes reaches her subscribers on the web, the mobile app and the
// kiosk shell; the certificate is sealed at rest and served to her (and to nobody else) as PDF.
func TestCaseProgressEveryChannel(t *testing.T) {
	e := newEvEnv(t, false)
	web, mobile, kiosk := e.subscribe(t, aliceWeb, ""), e.subscribe(t, aliceMobile, ""), e.subscribe(t, aliceKiosk, "")
	var c api.Case
	status, ae := e.call(t, "POST", "/cases", dept, api.CreateCase{Ref: "GA-2026-0001", Service: "hukou.transfer", Department: "公安局",
		Title: "户口迁移", CitizenToken: aliceKiosk}, &c)
	if status != http.StatusCreated || c.Status != api.CaseSubmitted || c.Channel != "kiosk" || c.SiteID != "hall" || len(c.Timeline) != 1 {
		t.Fatalf("create: %d %+v %+v", status, c, ae)
	}
	for _, s := range []*subscriber{web, mobile, kiosk} {
		if ev := s.next(t); ev.CaseID != c.ID || ev.Status != api.CaseSubmitted {
			t.Fatalf("first event %+v", ev)
		}
	}
	for _, st := range []string{api.CaseAccepted, api.CaseInReview, api.CaseApproved} {
		var ev api.CaseEvent
		if status, ae := e.call(t, "POST", "/cases/"+c.ID+"/status", dept, api.SetCaseStatus{Status: st, Note: "进度 " + st}, &ev); status != http.StatusOK {
			t.Fatalf("status %s: %d %+v", st, status, ae)
		}
		for _, s := range []*subscriber{web, mobile, kiosk} {
			if got := s.next(t); got.Seq != ev.Seq || got.Status != st || got.Note != "进度 "+st {
				t.Fatalf("%s: got %+v, want %+v", st, got, ev)
			}
		}
	}
	// The certificate: a PDF only, sealed, then served to her.
	if status, ae := e.call(t, "POST", "/cases/"+c.ID+"/documents", dept, api.AddCaseDocument{Kind: "certificate", Name: "准予迁入证明.pdf",
		ContentType: "text/plain", Content: []byte("not a pdf")}, nil); status != http.StatusBadRequest || !strings.HasPrefix(ae.Fields[0], "content:") {
		t.Fatalf("non-PDF certificate: %d %+v", status, ae)
	}
	var docEv api.CaseEvent
	if status, ae := e.call(t, "POST", "/cases/"+c.ID+"/documents", dept, api.AddCaseDocument{Kind: "certificate", Name: "准予迁入证明.pdf",
		ContentType: "application/pdf", Content: pdf}, &docEv); status != http.StatusCreated || docEv.DocumentID == "" {
		t.Fatalf("certificate: %d %+v", status, ae)
	}
	e.call(t, "POST", "/cases/"+c.ID+"/status", dept, api.SetCaseStatus{Status: api.CaseCertificateReady}, nil)
	for _, s := range []*subscriber{web, mobile, kiosk} {
		if got := s.next(t); got.DocumentID != docEv.DocumentID {
			t.Fatalf("document event %+v", got)
		}
		if got := s.next(t); got.Status != api.CaseCertificateReady {
			t.Fatalf("certificate ready %+v", got)
		}
	}
	get := func(tok string) (int, string, []byte) {
		req, _ := http.NewRequest("GET", e.srv.URL+api.Prefix+"/me/cases/"+c.ID+"/documents/"+docEv.DocumentID, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header.Get("Content-Type"), b
	}
	if status, ct, b := get(aliceKiosk); status != http.StatusOK || ct != "application/pdf" || !bytes.Equal(b, pdf) {
		t.Fatalf("her certificate: %d %s %q", status, ct, b)
	}
	if status, _, _ := get(bobTok); status != http.StatusNotFound {
		t.Fatalf("someone else's certificate: %d", status)
	}
	// Her case list and case, from any channel.
	var mine api.Cases
	if e.call(t, "GET", "/me/cases", bearer(aliceMobile), nil, &mine); len(mine.Cases) != 1 || mine.Cases[0].Status != api.CaseCertificateReady {
		t.Fatalf("my cases %+v", mine)
	}
	var one api.Case
	if e.call(t, "GET", "/me/cases/"+c.ID, bearer(aliceWeb), nil, &one); len(one.Timeline) != 6 || len(one.Documents) != 1 {
		t.Fatalf("my case %+v", one)
	}
	// A reconnecting stream resumes after its last event.
	again := e.subscribe(t, aliceWeb, "2")
	if got := again.next(t); got.Status != api.CaseInReview {
		t.Fatalf("resumed at %+v", got)
	}
	// The certificate is sealed at rest: its bytes are nowhere in the database.
	e.st.Close()
	files, _ := filepath.Glob(e.path + "*")
	for _, f := range files {
		if b, _ := os.ReadFile(f); bytes.Contains(b, []byte("certificate of the test")) {
			t.Errorf("%s holds the certificate in the clear", f)
		}
	}
	e.st, _ = sqlite.Open(context.Background(), e.path, nil)
}

// TestCaseRefusals: who may do what to a case, and what a case may hold.
func TestCaseRefusals(t *testing.T) {
	e := newEvEnv(t, false)
	create := func(auth string, req api.CreateCase) (int, api.Error, api.Case) {
		var c api.Case
		status, ae := e.call(t, "POST", "/cases", auth, req, &c)
		return status, ae, c
	}
	good := api.CreateCase{Ref: "R-1", Service: "hukou.transfer", Department: "公安局", Title: "户口迁移", CitizenToken: aliceWeb}
	if status, _, _ := create("", good); status != http.StatusUnauthorized {
		t.Errorf("no credentials: %d", status)
	}
	if status, _, _ := create(basic("mini-program", ""), good); status != http.StatusUnauthorized {
		t.Errorf("a public client: %d", status)
	}
	bad := good
	bad.CitizenToken = staffTok
	if status, ae, _ := create(dept, bad); status != http.StatusBadRequest || !strings.HasPrefix(ae.Fields[0], "citizenToken") {
		t.Errorf("a staff token: %d %+v", status, ae)
	}
	bad = good
	bad.Title, bad.Service = "户口 "+canary, "Bad!"
	if status, ae, _ := create(dept, bad); status != http.StatusBadRequest || len(ae.Fields) != 2 {
		t.Errorf("bad fields: %d %+v", status, ae)
	}
	status, _, c := create(dept, good)
	if status != http.StatusCreated || c.Channel != "web" {
		t.Fatalf("create: %d %+v", status, c)
	}
	if status, ae, _ := create(dept, good); status != http.StatusConflict {
		t.Errorf("same ref again: %d %+v", status, ae)
	}
	other := basic("web-portal", "web-secret") // another confidential client: not its case
	if status, _ := e.call(t, "POST", "/cases/"+c.ID+"/status", other, api.SetCaseStatus{Status: api.CaseAccepted}, nil); status != http.StatusNotFound {
		t.Errorf("another department's case: %d", status)
	}
	if status, _ := e.call(t, "GET", "/cases/"+c.ID, other, nil, nil); status != http.StatusNotFound {
		t.Errorf("another department reads it: %d", status)
	}
	if status, ae := e.call(t, "POST", "/cases/"+c.ID+"/status", dept, api.SetCaseStatus{Status: api.CaseApproved}, nil); status != http.StatusConflict {
		t.Errorf("skipping ahead: %d %+v", status, ae)
	}
	if status, ae := e.call(t, "POST", "/cases/"+c.ID+"/status", dept, api.SetCaseStatus{Status: api.CaseAccepted, Note: "ID " + canary}, nil); status != http.StatusBadRequest {
		t.Errorf("an ID number in a note: %d %+v", status, ae)
	}
	if status, _ := e.call(t, "GET", "/me/cases/"+c.ID, bearer(bobTok), nil, nil); status != http.StatusNotFound {
		t.Errorf("someone else's case: %d", status)
	}
	if status, _ := e.call(t, "GET", "/me/cases", bearer(staffTok), nil, nil); status != http.StatusUnauthorized {
		t.Errorf("staff (a fleet API token) reading /me/cases: %d, want 401", status)
	}
}

// TestCaseStreamOutlivesTimeouts: a citizen's case stream stays open past the HTTP server's read
// and write timeouts, which bound every other request, and goes on carrying her updates.
func TestCaseStreamOutlivesTimeouts(t *testing.T) {
	e := newEvEnv(t, false)
	plain := e.srv
	e.srv = httptest.NewUnstartedServer(plain.Config.Handler)
	const timeout = 200 * time.Millisecond
	e.srv.Config.ReadTimeout, e.srv.Config.WriteTimeout = timeout, timeout
	e.srv.Start()
	plain.Close()
	s := e.subscribe(t, aliceWeb, "")
	var c api.Case
	if status, ae := e.call(t, "POST", "/cases", dept, api.CreateCase{Ref: "GA-2026-0009", Service: "hukou.transfer", Department: "公安局",
		Title: "户口迁移", CitizenToken: aliceWeb}, &c); status != http.StatusCreated {
		t.Fatalf("create: %d %+v", status, ae)
	}
	if ev := s.next(t); ev.Status != api.CaseSubmitted {
		t.Fatalf("first event %+v", ev)
	}
	time.Sleep(3 * timeout) // past both timeouts: a stream bound by them would be closed by now
	if status, ae := e.call(t, "POST", "/cases/"+c.ID+"/status", dept, api.SetCaseStatus{Status: api.CaseAccepted}, nil); status != http.StatusOK {
		t.Fatalf("status: %d %+v", status, ae)
	}
	if ev := s.next(t); ev.Status != api.CaseAccepted {
		t.Fatalf("after the timeouts %+v", ev)
	}
}
