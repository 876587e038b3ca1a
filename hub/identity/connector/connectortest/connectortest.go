// Package connectortest has fakes of the upstreams hub/identity/connector speaks to, written
// from the upstreams' public documents (cited in the connector package's doc): a WeChat (微信
// 网站应用/网页授权 and the sns APIs) and an Alipay (用户信息授权 and the OpenAPI gateway's
// alipay.system.oauth.token). Each is an HTTPS server on 127.0.0.1 with its own certificate,
// checks what the documents say a request must carry, answers as the documents show, and plays
// the user at the authorization page (approve as a given user, or refuse).
package connectortest

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

// caFile writes the server's certificate as PEM in a temporary directory: a connector's ca_file.
func caFile(t testing.TB, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "upstream-ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Authorize plays the browser at an upstream's authorization page: it gets authURL with the
// upstream server's client and returns the query of the redirect back (what the connector's
// Finish is given).
func Authorize(t testing.TB, srv *httptest.Server, authURL string) url.Values {
	t.Helper()
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorization page: status %d, want a redirect back", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return loc.Query()
}

func writeJSONText(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Write([]byte(body))
}
