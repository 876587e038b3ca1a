package httpapi_test

import (
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/ca/catest"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/fleet"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func TestEnrollment(t *testing.T) {
	e := newEnv(t)
	e.site(t, "sz-futian-1")
	tok := e.token(t, "sz-futian-1", "2h")
	if !strings.HasPrefix(tok.Secret, "kfe_") || tok.SiteID != "sz-futian-1" || !tok.ExpiresAt.Equal(e.clock.Now().Add(2*time.Hour)) {
		t.Fatalf("token %+v", tok)
	}
	if def := e.token(t, "sz-futian-1", ""); !def.ExpiresAt.Equal(e.clock.Now().Add(24 * time.Hour)) {
		t.Fatalf("default ttl: expires %v", def.ExpiresAt)
	}
	if longest := e.token(t, "sz-futian-1", "720h"); !longest.ExpiresAt.Equal(e.clock.Now().Add(720 * time.Hour)) {
		t.Fatalf("ttl 720h: expires %v", longest.ExpiresAt)
	}

	// The token carries the pin of the CA, which anyone may fetch to check it.
	pinned, err := api.ParseEnrollToken(tok.Secret)
	if want := api.CAHash(e.ca.Certificate()); err != nil || pinned.CAHash != want || tok.CAHash != want {
		t.Fatalf("token %q (caHash %q) does not pin the CA %s: %v", tok.Secret, tok.CAHash, want, err)
	}
	var got api.CA
	e.do(t, "GET", p+"/ca", "", nil, 200, &got)
	if got.Certificate != string(e.ca.CertPEM()) || got.CAHash != tok.CAHash {
		t.Fatalf("GET /ca = %+v", got)
	}
	// The secret alone redeems the token, as the agent sends it.
	csr, _ := catest.NewCSR(t, "k-secret-only")
	e.do(t, "POST", p+"/enroll", "", api.Enroll{Token: pinned.Secret, CSR: string(csr)}, 201, nil)
	tok = e.token(t, "sz-futian-1", "2h")

	csr, _ = catest.NewCSR(t, "k-chosen-by-kiosk")
	badCSR := "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
	// A bad CSR does not burn the token.
	r := e.do(t, "POST", p+"/enroll", "", api.Enroll{Token: tok.Secret, CSR: badCSR}, 400, nil)
	if er := r.err(t); er.Code != "bad_request" || !strings.HasPrefix(er.Message, "csr: ") {
		t.Fatalf("bad csr: %+v", er)
	}
	var en api.Enrolled
	e.do(t, "POST", p+"/enroll", "", api.Enroll{Token: tok.Secret, CSR: string(csr), Model: "KF-K200"}, 201, &en)
	if !wire.ValidDeviceID(en.DeviceID) || en.MQTTAddr != "hub.kiosk.test:8883" || en.CACertificate != string(e.ca.CertPEM()) {
		t.Fatalf("enrolled %+v", en)
	}
	blk, _ := pem.Decode([]byte(en.Certificate))
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != en.DeviceID || !cert.NotAfter.Equal(en.NotAfter) {
		t.Fatalf("certificate for %q until %v, want %q until %v", cert.Subject.CommonName, cert.NotAfter, en.DeviceID, en.NotAfter)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: e.ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("certificate does not verify as a client certificate of the CA: %v", err)
	}
	var d fleet.Device
	e.do(t, "GET", p+"/devices/"+en.DeviceID, opsTok, nil, 200, &struct {
		Device *fleet.Device `json:"device"`
	}{&d})
	if d.SiteID != "sz-futian-1" || d.Region != "440304" || d.Model != "KF-K200" || !d.EnrolledAt.Equal(e.clock.Now()) ||
		d.CertSerial == "" || !d.CertExpiry.Equal(en.NotAfter) {
		t.Fatalf("device %+v", d)
	}

	for _, tc := range []struct {
		name, token string
		status      int
		code, msg   string
	}{
		{"used token", tok.Secret, 410, "gone", "used"},
		{"unknown token", "kfe_nope", 401, "unauthorized", "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			csr, _ := catest.NewCSR(t, "x")
			er := e.do(t, "POST", p+"/enroll", "", api.Enroll{Token: tc.token, CSR: string(csr)}, tc.status, nil).err(t)
			if er.Code != tc.code || !strings.Contains(er.Message, tc.msg) {
				t.Fatalf("got %+v, want %s mentioning %q", er, tc.code, tc.msg)
			}
		})
	}
	t.Run("expired token", func(t *testing.T) {
		old := e.token(t, "sz-futian-1", "1h")
		e.clock.Add(time.Hour + time.Millisecond)
		csr, _ := catest.NewCSR(t, "x")
		er := e.do(t, "POST", p+"/enroll", "", api.Enroll{Token: old.Secret, CSR: string(csr)}, 410, nil).err(t)
		if er.Code != "gone" || !strings.Contains(er.Message, "expired") {
			t.Fatalf("got %+v", er)
		}
	})
}
