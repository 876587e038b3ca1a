package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/hub/cases"
	"github.com/kioskfleet/kioskfleet/hub/events"
	"github.com/kioskfleet/kioskfleet/hub/httpapi"
	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/gb11643"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// cardToken logs a card holder in at kiosk k through the real provider (the JWT bearer grant of
// the kiosk shell's client) and returns the access token; resource, if not empty, is the API it
// asks the token for (RFC 8707).
func cardToken(t *testing.T, idp *identitytest.Env, k *identitytest.Kiosk, number17, name, resource string) string {
	t.Helper()
	n := number17 + string(gb11643.CheckChar([]byte(number17)))
	form := url.Values{"grant_type": {identity.GrantTypeJWTBearer}, "client_id": {identity.ClientKioskShell}, "scope": {"openid"},
		"assertion": {k.Assertion(idp.Issuer, &wire.IDCard{Number: wire.Secret(n), Name: name}, time.Now(), time.Minute)}}
	if resource != "" {
		form.Set(identity.ParamResource, resource)
	}
	status, tok, err := idp.PostForm("/oidc/token", form, "", "")
	if err != nil || status != http.StatusOK {
		t.Fatalf("ID-card login: %d %v %v", status, tok, err)
	}
	return tok["access_token"].(string)
}

// codeToken runs the code flow (PKCE) of client as the admin, consenting if asked, and returns
// the access token; resource as for cardToken.
func codeToken(t *testing.T, idp *identitytest.Env, client, secret, resource string) string {
	t.Helper()
	v := oauth2.GenerateVerifier()
	q := url.Values{"client_id": {client}, "redirect_uri": {idp.Callback}, "response_type": {"code"}, "scope": {"openid"},
		"state": {"s"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(v)}, "code_challenge_method": {"S256"}}
	if resource != "" {
		q.Set(identity.ParamResource, resource)
	}
	cb, err := idp.NewBrowser().Login(idp.Issuer+"/oidc/authorize?"+q.Encode(), identitytest.AdminUser, identitytest.AdminPassword)
	if err != nil || cb.Query().Get("code") == "" {
		t.Fatalf("%s login: %v %v", client, cb, err)
	}
	status, tok, err := idp.PostForm("/oidc/token", url.Values{"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")},
		"redirect_uri": {idp.Callback}, "code_verifier": {v}}, client, secret)
	if err != nil || status != http.StatusOK {
		t.Fatalf("%s token: %d %v %v", client, status, tok, err)
	}
	return tok["access_token"].(string)
}

// TestAudiences: which tokens each API takes, with tokens of the real provider. A citizen's
// kiosk session token (asked for the citizens' API, as the agent asks it) reads her own cases
// and posts events, and nobody else's case; it opens no fleet endpoint. A staff token for the
// fleet API opens the fleet API and none of the citizens' endpoints; a department's app (a
// third-party client, its token for no API) and a kiosk token asked for no API open neither.
// The department API takes the citizen's token only if it is for the citizens' API.
func TestAudiences(t *testing.T) {
	idp := identitytest.New(t)
	st := idp.Store
	ev, err := events.New(events.Config{Secret: bytes.Repeat([]byte{6}, 32)}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { ev.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	room, err := cases.New(cases.Config{Secret: bytes.Repeat([]byte{4}, 32)}, st, cases.NewLocal())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Store: st, Auth: httpapi.OIDC{P: idp.P}, Events: ev, Cases: room,
		Clients: clients{"dept": "dept-secret"}}))
	t.Cleanup(srv.Close)
	e := &evEnv{srv: srv}

	k := idp.EnrollKiosk(t, "kiosk-aud-01")
	citizen := idp.P.CitizenAPI()
	alice := cardToken(t, idp, k, "44030519800101123", "王五", citizen)
	bob := cardToken(t, idp, k, "44030519810202234", "赵六", citizen)
	aliceNoAPI := cardToken(t, idp, k, "44030519800101123", "王五", "") // an agent that asks for no API
	staff := codeToken(t, idp, "rp", "rp-secret", idp.P.FleetAPI())
	third := codeToken(t, idp, "third", "third-secret", "")

	// A citizen's kiosk token asked for the fleet API is refused at the provider (RFC 8707 invalid_target).
	n := "44030519800101123"
	form := url.Values{"grant_type": {identity.GrantTypeJWTBearer}, "client_id": {identity.ClientKioskShell}, "scope": {"openid"},
		identity.ParamResource: {idp.P.FleetAPI()},
		"assertion":            {k.Assertion(idp.Issuer, &wire.IDCard{Number: wire.Secret(n + string(gb11643.CheckChar([]byte(n)))), Name: "王五"}, time.Now(), time.Minute)}}
	if status, m, _ := idp.PostForm("/oidc/token", form, "", ""); status != http.StatusBadRequest || m["error"] != "invalid_target" {
		t.Errorf("kiosk session token asked for the fleet API: %d %v", status, m)
	}

	// The department files a case for each, with the citizen's token: only a citizens' API token.
	var aliceCase, bobCase api.Case
	for i, tc := range []struct {
		tok  string
		want int
		out  *api.Case
	}{{alice, http.StatusCreated, &aliceCase}, {bob, http.StatusCreated, &bobCase}, {aliceNoAPI, http.StatusBadRequest, nil},
		{staff, http.StatusBadRequest, nil}, {third, http.StatusBadRequest, nil}} {
		var c api.Case
		ref := "R-" + strconv.Itoa(i)
		status, ae := e.call(t, "POST", "/cases", dept, api.CreateCase{Ref: ref, Service: "hukou.transfer", Department: "公安局",
			Title: "户口迁移", CitizenToken: tc.tok}, &c)
		if status != tc.want {
			t.Errorf("case filed with a %s token: %d %+v, want %d", who(tc.tok, alice, bob, aliceNoAPI, staff, third), status, ae, tc.want)
		}
		if tc.out != nil {
			*tc.out = c
		}
	}
	var doc api.CaseEvent
	if status, ae := e.call(t, "POST", "/cases/"+bobCase.ID+"/documents", dept, api.AddCaseDocument{Kind: "certificate",
		Name: "certificate.pdf", ContentType: "application/pdf", Content: pdf}, &doc); status != http.StatusCreated {
		t.Fatalf("document: %d %+v", status, ae)
	}

	// Her token: her cases only.
	var mine api.Cases
	if status, ae := e.call(t, "GET", "/me/cases", bearer(alice), nil, &mine); status != http.StatusOK || len(mine.Cases) != 1 || mine.Cases[0].ID != aliceCase.ID {
		t.Errorf("her cases: %d %+v %+v", status, ae, mine)
	}
	for _, p := range []string{"/me/cases/" + bobCase.ID, "/me/cases/" + bobCase.ID + "/documents/" + doc.DocumentID} {
		if status, _ := e.call(t, "GET", p, bearer(alice), nil, nil); status != http.StatusNotFound {
			t.Errorf("her token on %s (another citizen's): %d, want 404", p, status)
		}
	}
	if status, _ := e.call(t, "GET", "/me/cases/"+bobCase.ID+"/documents/"+doc.DocumentID, bearer(bob), nil, nil); status != http.StatusOK {
		t.Errorf("his own document: %d", status)
	}
	batch := api.EventBatch{Events: []json.RawMessage{json.RawMessage(`{"v":1,"id":"aud-ev-1","type":"view","ts":` +
		strconv.FormatInt(time.Now().UnixMilli(), 10) + `,"service":"hukou.transfer"}`)}}
	if status, ae := e.call(t, "POST", "/events", bearer(alice), batch, nil); status != http.StatusOK {
		t.Errorf("events with her kiosk session token: %d %+v", status, ae)
	}

	// Each endpoint and the tokens it must refuse (401: not issued for its API) or take.
	for _, c := range []struct {
		method, path string
		body         any
		refused      []string
		taken        string
	}{
		{"GET", "/me/cases", nil, []string{staff, third, aliceNoAPI}, alice},
		{"GET", "/me/cases/" + aliceCase.ID, nil, []string{staff, third, aliceNoAPI}, alice},
		{"GET", "/me/case-events?after=999999", nil, []string{staff, third, aliceNoAPI}, ""},
		{"POST", "/events", batch, []string{staff, third, aliceNoAPI}, ""},
		{"GET", "/devices", nil, []string{alice, bob, third, aliceNoAPI}, staff},
		{"GET", "/sites", nil, []string{alice, third}, staff},
		{"GET", "/me", nil, []string{alice, third}, staff},
	} {
		for _, tok := range c.refused {
			if status, _ := e.call(t, c.method, c.path, bearer(tok), c.body, nil); status != http.StatusUnauthorized {
				t.Errorf("%s %s with a %s token: %d, want 401", c.method, c.path, who(tok, alice, bob, aliceNoAPI, staff, third), status)
			}
		}
		if c.taken != "" {
			if status, ae := e.call(t, c.method, c.path, bearer(c.taken), c.body, nil); status != http.StatusOK {
				t.Errorf("%s %s with a %s token: %d %+v, want 200", c.method, c.path, who(c.taken, alice, bob, aliceNoAPI, staff, third), status, ae)
			}
		}
	}
	// A wrong audience is told as such (RFC 6750 §3.1).
	req, _ := http.NewRequest("GET", srv.URL+api.Prefix+"/devices", nil)
	req.Header.Set("Authorization", "Bearer "+alice)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if h := res.Header.Get("WWW-Authenticate"); !strings.Contains(h, `error="invalid_token"`) {
		t.Errorf("WWW-Authenticate for a citizen's token on the fleet API: %q", h)
	}
}

// who names a test token in messages.
func who(tok, alice, bob, aliceNoAPI, staff, third string) string {
	switch tok {
	case alice, bob:
		return "citizen's (citizens' API)"
	case aliceNoAPI:
		return "citizen's kiosk (no API)"
	case staff:
		return "staff (fleet API)"
	case third:
		return "department app's"
	}
	return "?"
}
