package httpapi_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// FuzzBodies sends arbitrary bodies to every endpoint that decodes one. The API answers each with
// a success or a client error carrying an api.ErrorBody, never a 500 or a body that is not JSON.
func FuzzBodies(f *testing.F) {
	for _, s := range []struct {
		ep   uint8
		body string
	}{
		{0, `{"id":"sz-x","name":"X","region":"440304","address":"a"}`},
		{0, `{"id":"-X","name":" ","region":"000000"}`},
		{1, `{"siteId":"sz-a","ttl":"24h"}`},
		{1, `{"siteId":"sz-a","ttl":"1e400h"}`},
		{2, `{"token":"kfe_x","csr":"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n","model":"m"}`},
		{3, `{"name":"print-test-page","args":{"printer":"receipt0"},"ttl":"1h"}`},
		{3, `{"name":"a","args":[1,{"x":null}]}`},
		{4, `{"doc":{"logLevel":"info"}}`},
		{4, `{"doc":{"a":{"b":[1,2,{"c":"\u0000"}]}}}`},
		{4, `{"doc":{}} trailing`},
		{0, `{"id":"\ud800","name":"\u2028","region":"４４０３０４"}`},
		{1, ``}, {2, `null`}, {3, `[]`}, {4, `"x"`},
	} {
		f.Add(s.ep, []byte(s.body))
	}
	e := newEnv(f)
	e.site(f, "sz-a")
	dev := e.enroll(f, "sz-a").DeviceID
	endpoints := []struct{ method, path, token string }{
		{"POST", p + "/sites", adminTok},
		{"POST", p + "/enrollment-tokens", opsTok},
		{"POST", p + "/enroll", ""},
		{"POST", p + "/devices/" + dev + "/commands", opsTok},
		{"PUT", p + "/devices/" + dev + "/desired", opsTok},
	}
	f.Fuzz(func(t *testing.T, ep uint8, body []byte) {
		x := endpoints[int(ep)%len(endpoints)]
		r := e.raw(t, t.Context(), x.method, x.path, x.token, bytes.NewReader(body))
		switch r.status {
		case 200, 201, 202:
			if !json.Valid(r.body) {
				t.Fatalf("%s %s: %d with a body that is not JSON: %q", x.method, x.path, r.status, r.body)
			}
		case 400, 401, 409, 410:
			var eb api.ErrorBody
			if err := json.Unmarshal(r.body, &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
				t.Fatalf("%s %s: %d with body %q", x.method, x.path, r.status, r.body)
			}
		default:
			t.Fatalf("%s %s %q: status %d %s", x.method, x.path, body, r.status, r.body)
		}
	})
}
