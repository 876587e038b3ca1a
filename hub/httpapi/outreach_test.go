package httpapi_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/events"
	"github.com/kioskfleet/kioskfleet/hub/httpapi"
	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
	"github.com/kioskfleet/kioskfleet/hub/outreach"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/gb11643"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// TestRecommendations: a citizen who logged in at a kiosk with her ID card (born 60 years ago
// less 10 days, her card expiring in 60 days) gets, once the simulated clock reaches the window,
// the senior services and the card renewal, on the kiosk and on the web; a closed case brings its
// follow-up service, and co-use of 10 citizens (never of 9) a service they used; when she opts
// out (on the web) she gets nothing, on the kiosk too.
func TestRecommendations(t *testing.T) {
	idp := identitytest.New(t)
	st := idp.Store
	ev, err := events.New(events.Config{Secret: bytes.Repeat([]byte{6}, 32)}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	realNow := time.Now().UTC()
	clock := realNow.AddDate(0, 0, -60)
	room := outreach.New(outreach.Config{Now: func() time.Time { return clock }}, st, idp.P, ev.Pseudonyms())

	// Her ID-card login at a kiosk, through the real provider: the account holds her card data,
	// encrypted.
	k := idp.EnrollKiosk(t, "kiosk-sr-01")
	birth := realNow.AddDate(-60, 0, 10)
	n := "440305" + birth.Format("20060102") + "123"
	n += string(gb11643.CheckChar([]byte(n)))
	card := &wire.IDCard{Number: wire.Secret(n), Name: "李四", ValidTo: realNow.AddDate(0, 0, 60).Format("20060102")}
	status, tok, err := idp.PostForm("/oidc/token", url.Values{"grant_type": {identity.GrantTypeJWTBearer},
		"assertion": {k.Assertion(idp.Issuer, card, time.Now(), time.Minute)}, "client_id": {identity.ClientKioskShell}, "scope": {"openid"},
		identity.ParamResource: {idp.P.CitizenAPI()}}, "", "")
	if err != nil || status != http.StatusOK {
		t.Fatalf("ID-card login: %d %v %v", status, tok, err)
	}
	kioskTok := tok["access_token"].(string)
	req, _ := http.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer "+kioskTok)
	her, err := idp.P.Authenticate(req)
	if err != nil {
		t.Fatal(err)
	}
	// Her web session (the web portal's token of the same account).
	web := tokens{"her-web": {Subject: her.Subject, Roles: []string{"citizen"}, ClientID: identity.ClientWebPortal, Audience: citizenAPI}}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Store: st, Auth: httpapi.AnyOf{httpapi.OIDC{P: idp.P}, web}, Events: ev, Outreach: room}))
	t.Cleanup(srv.Close)
	e := &evEnv{srv: srv}
	recs := func(token string) api.Recommendations {
		t.Helper()
		var out api.Recommendations
		if status, ae := e.call(t, "GET", "/me/recommendations", bearer(token), nil, &out); status != http.StatusOK {
			t.Fatalf("recommendations: %d %+v", status, ae)
		}
		return out
	}
	services := func(r api.Recommendations) []string {
		var s []string
		for _, x := range r.Recommendations {
			s = append(s, x.Service+"/"+x.Rule)
		}
		return s
	}
	if got := recs(kioskTok); len(got.Recommendations) != 0 {
		t.Fatalf("70 days before her birthday: %v", services(got))
	}
	clock = realNow
	want := []string{"senior.card/turning-60", "elderly.allowance/turning-60", "idcard.renewal/id-card-expiring"}
	for _, tk := range []string{kioskTok, "her-web"} {
		if got := services(recs(tk)); !slices.Equal(got, want) {
			t.Fatalf("%s: %v, want %v", tk, got, want)
		}
	}
	// A closed case brings its follow-up; 10 citizens' co-use brings a service, 9 do not.
	c := store.Case{ID: "case-sr", ClientID: "dept", Ref: "R", Account: her.Subject, Service: "hukou.transfer", Department: "d",
		Title: "t", Channel: "kiosk", Status: store.CaseSubmitted, CreatedAt: clock, UpdatedAt: clock}
	st.CreateCase(t.Context(), c)
	if _, err := st.SetCaseStatus(t.Context(), c.ID, store.CaseClosed, "", clock); err != nil {
		t.Fatal(err)
	}
	var evs []store.Event
	use := func(who, service string) {
		evs = append(evs, store.Event{ID: fmt.Sprintf("u-%s-%s", who, service), Version: 1, Type: store.EventSubmit, Channel: "web",
			ClientID: "web-portal", Pseudonym: who, Service: service, DeviceTS: clock, RecvTS: clock})
	}
	for i := range 10 {
		use(fmt.Sprint("p", i), "passport.apply")
		use(fmt.Sprint("p", i), "travel.permit")
		if i < 9 {
			use(fmt.Sprint("p", i), "rare.service")
		}
	}
	use(ev.Pseudonyms().Citizen(identity.ClientWebPortal, her.Subject), "passport.apply")
	if _, err := st.CommitEvents(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	want = append(want, "social-security.transfer/after:hukou.transfer", "travel.permit/co-use:passport.apply")
	for _, tk := range []string{kioskTok, "her-web"} {
		if got := services(recs(tk)); !slices.Equal(got, want) {
			t.Fatalf("%s: %v, want %v", tk, got, want)
		}
	}
	// She opts out on the web: nothing anywhere.
	var o api.OptOut
	if status, ae := e.call(t, "PUT", "/me/recommendations/opt-out", bearer("her-web"), api.OptOut{OptedOut: true}, &o); status != http.StatusOK || !o.OptedOut {
		t.Fatalf("opt out: %d %+v", status, ae)
	}
	for _, tk := range []string{kioskTok, "her-web"} {
		if got := recs(tk); !got.OptedOut || len(got.Recommendations) != 0 {
			t.Fatalf("%s after opting out: %+v", tk, got)
		}
	}
	e.call(t, "PUT", "/me/recommendations/opt-out", bearer(kioskTok), api.OptOut{OptedOut: false}, nil)
	if got := recs("her-web"); got.OptedOut || len(got.Recommendations) != len(want) {
		t.Fatalf("opted in again: %+v", got)
	}
}
