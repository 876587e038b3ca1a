package httpapi_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
)

func TestSitesAndHealth(t *testing.T) {
	e := newEnv(t)
	var h api.Health
	e.do(t, "GET", p+"/health", opsTok, nil, 200, &h)
	if h != (api.Health{Status: "ok", Version: "0.1.0-test", Store: "ok", Broker: "hub.kiosk.test:8883"}) {
		t.Fatalf("health %+v", h)
	}
	var sites api.Sites
	e.do(t, "GET", p+"/sites", opsTok, nil, 200, &sites)
	if sites.Sites == nil || len(sites.Sites) != 0 {
		t.Fatalf("no sites: %+v, want an empty list", sites)
	}
	if !strings.Contains(string(e.do(t, "GET", p+"/sites", opsTok, nil, 200, nil).body), `"sites":[]`) {
		t.Fatal("empty list not encoded as []")
	}
	b := e.site(t, "sz-b")
	a := e.site(t, "sz-a")
	if a != (fleet.Site{ID: "sz-a", Name: "Hall sz-a", Region: "440304", Address: "Fuzhong 3rd Road 8"}) {
		t.Fatalf("created %+v", a)
	}
	e.do(t, "GET", p+"/sites", opsTok, nil, 200, &sites)
	if !slices.Equal(sites.Sites, []fleet.Site{a, b}) {
		t.Fatalf("sites %+v, want by id", sites.Sites)
	}
	if er := e.do(t, "POST", p+"/sites", adminTok, a, 409, nil).err(t); er.Code != "conflict" {
		t.Fatalf("duplicate site: %+v", er)
	}

	d1, d2 := e.enroll(t, "sz-a"), e.enroll(t, "sz-b")
	e.sess.connected[d2.DeviceID] = true
	e.do(t, "GET", p+"/health", adminTok, nil, 200, &h)
	if h.Devices != 2 || h.ConnectedCount != 1 || h.Status != "ok" {
		t.Fatalf("health %+v with %s, %s (one connected)", h, d1.DeviceID, d2.DeviceID)
	}

	// A store that does not answer makes the hub degraded, not silent.
	e.st.Close()
	e.do(t, "GET", p+"/health", adminTok, nil, 200, &h)
	if h.Status != "degraded" || h.Store == "ok" {
		t.Fatalf("health with a closed store: %+v", h)
	}
}
