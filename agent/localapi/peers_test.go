package localapi_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kioskfleet/kioskfleet/agent/kiosklogin"
	"github.com/kioskfleet/kioskfleet/agent/localapi"
	"github.com/kioskfleet/kioskfleet/agent/localapi/localapitest"
	"github.com/kioskfleet/kioskfleet/drivers/idcard"
	"github.com/kioskfleet/kioskfleet/drivers/idcard/idcardsim"
	"github.com/kioskfleet/kioskfleet/drivers/ipp"
	"github.com/kioskfleet/kioskfleet/drivers/ipp/ipptest"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

func testPDF(t *testing.T) []byte {
	t.Helper()
	pdf, err := ipp.TestPagePDF(ipp.TestPage{KioskID: "k-001", Printer: "a4", Lines: []string{"materials of case 2026-0042"}})
	if err != nil {
		t.Fatal(err)
	}
	return pdf
}

// A PDF printed through the API lands byte-identical on a real IPP printer (ippeveprinter), with
// the job's progress (pages) as events.
func TestPrintNativeOnIPP(t *testing.T) {
	k := startKiosk(t, kioskOptions{a4: true, a4Job: "echo 'ATTR: job-impressions-completed=1' >&2\nsleep 0.3\n" +
		"echo 'ATTR: job-impressions-completed=2' >&2\nsleep 0.3\nexit 0\n"})
	c := k.dial(t)
	pdf := testPDF(t)
	r := c.Do("Printer.PrintNative", map[string]any{"data": pdf, "name": "materials"}, time.Minute)
	expect(t, r, "success", "")
	pages, last := 0, ""
	for _, e := range r.Events {
		var p struct {
			Device string
			JobID  int
			State  string
			Pages  int
		}
		e.Decode(t, &p)
		if e.Header.Name != "Printer.JobProgressEvent" || p.Device != "a4" || p.JobID == 0 || p.Pages < pages {
			t.Errorf("event %s", e.Raw)
		}
		pages, last = p.Pages, p.State
	}
	if pages != 2 || last != "completed" {
		t.Errorf("progress ended at %d pages, %s", pages, last)
	}
	files, err := k.a4.JobFiles("*.pdf")
	if err != nil || len(files) != 1 {
		t.Fatalf("spool: %v, %v", files, err)
	}
	if got, _ := os.ReadFile(files[0]); !bytes.Equal(got, pdf) {
		t.Fatalf("the printer got %d bytes, not the %d of the PDF sent", len(got), len(pdf))
	}
}

// A printer out of paper mid-job: Printer.NoMediaEvent, a paperOut completion, and the apps see
// the printer's paper run out unsolicited.
func TestPrintNativePaperOut(t *testing.T) {
	k := startKiosk(t, kioskOptions{a4: true, a4Job: ipptest.FaultMediaEmpty})
	c := k.dial(t)
	r := c.Do("Printer.PrintNative", map[string]any{"data": testPDF(t)}, time.Minute)
	expect(t, r, "commandErrorCode", "paperOut")
	noMedia := 0
	for _, e := range r.Events {
		if e.Header.Name == "Printer.NoMediaEvent" {
			noMedia++
		}
	}
	if noMedia != 1 || !strings.Contains(r.Completion.Header.ErrorDescription, "out of paper") {
		t.Errorf("%d NoMediaEvents; completion %s", noMedia, r.Completion.Raw)
	}
	c.Next(10*time.Second, func(m localapitest.Msg) bool {
		return m.Header.Name == "Printer.PaperThresholdEvent" && strings.Contains(string(m.Payload), `"device":"a4"`) &&
			strings.Contains(string(m.Payload), `"threshold":"out"`)
	})
	r = c.Do("Printer.PrintNative", map[string]any{"data": testPDF(t)}, time.Minute) // refused before sending
	expect(t, r, "commandErrorCode", "paperOut")
	if files, _ := k.a4.JobFiles("*.pdf"); len(files) != 1 {
		t.Errorf("a refused job reached the printer: %v", files)
	}
}

// Scanner.Scan returns the pages of SANE's test scanner as one PDF.
func TestScanToPDF(t *testing.T) {
	k := startKiosk(t, kioskOptions{scanner: true})
	c := k.dial(t)
	r := c.Do("Scanner.Scan", map[string]any{"resolution": 50, "mode": "gray"}, time.Minute)
	expect(t, r, "success", "")
	var p struct {
		Device string
		Pages  int
		PDF    []byte
		Bytes  int
	}
	r.Completion.Decode(t, &p)
	if p.Device != "scan0" || p.Pages != 1 || !bytes.HasPrefix(p.PDF, []byte("%PDF-")) || p.Bytes != len(p.PDF) {
		t.Fatalf("scan: device %s, %d pages, %d bytes", p.Device, p.Pages, len(p.PDF))
	}
	expect(t, c.Do("Scanner.Scan", map[string]any{"mode": "sepia"}, time.Minute), "invalidData", "")
}

// fakeHub is the hub's token endpoint as far as an ID card login goes: it opens the kiosk's
// assertion with its encryption key (JWE, wire.SealAssertion), checks it (RFC 7523: ES256 with
// the device key) and answers a session for the card's holder.
type fakeHub struct {
	*httptest.Server
	key *ecdsa.PrivateKey
	enc *ecdsa.PrivateKey // the hub's key for assertions, published in its JWKS

	mu      sync.Mutex
	numbers []string // ID numbers in the assertions received
}

func newFakeHub(t *testing.T) *fakeHub {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h := &fakeHub{key: key, enc: enc}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": h.URL, "token_endpoint": h.URL + "/oidc/token",
			"jwks_uri": h.URL + "/oidc/keys"})
	})
	mux.HandleFunc("/oidc/keys", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: &enc.PublicKey, KeyID: "e1", Algorithm: string(wire.AssertionKeyAlg), Use: "enc"}}})
	})
	mux.HandleFunc("/oidc/token", func(w http.ResponseWriter, r *http.Request) {
		var parts []string
		if jwe, err := jose.ParseEncryptedCompact(r.FormValue("assertion"), []jose.KeyAlgorithm{wire.AssertionKeyAlg},
			[]jose.ContentEncryption{wire.AssertionEnc}); err == nil {
			if inner, err := jwe.Decrypt(enc); err == nil {
				parts = strings.Split(string(inner), ".")
			}
		}
		if len(parts) != 3 || r.FormValue("grant_type") != kiosklogin.GrantType {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		d := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		if len(sig) != 64 || !ecdsa.Verify(&key.PublicKey, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"invalid_grant","error_description":"bad signature"}`))
			return
		}
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var claims struct {
			Aud    string `json:"aud"`
			IDCard struct {
				Number string `json:"number"`
			} `json:"id_card"`
		}
		json.Unmarshal(payload, &claims)
		h.mu.Lock()
		h.numbers = append(h.numbers, claims.IDCard.Number)
		h.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"access_token": "at-citizen-1", "id_token": "idt-citizen-1", "expires_in": 900})
	})
	h.Server = httptest.NewServer(mux)
	t.Cleanup(h.Close)
	return h
}

// Login.IdCard reads the card and logs its holder in at the hub: the full number goes to the hub
// inside the signed assertion, encrypted to the hub, and only there; the shell gets the session and the holder masked.
func TestLoginIdCard(t *testing.T) {
	hub := newFakeHub(t)
	login := localapi.AuthenticatorFunc(func(ctx context.Context, card wire.IDCard) (kiosklogin.Session, error) {
		return kiosklogin.Login(ctx, hub.Client(), hub.URL, "k-001", hub.key, card)
	})
	k := startKiosk(t, kioskOptions{login: login})
	c := k.dial(t)
	id := c.Send("Login.IdCard", nil, 20*time.Second)
	c.Next(5*time.Second, localapitest.Of(id, "event")) // waiting for a card
	k.card.SetCard(idcardsim.Resident())
	r := c.Await(id, 20*time.Second)
	expect(t, r, "success", "")
	var res localapi.LoginResult
	r.Completion.Decode(t, &res)
	if res.ACR != "idcard" || res.AccessToken != "at-citizen-1" || res.ExpiresIn != 900 ||
		res.Holder.Name != "张*丰" || res.Holder.Number != idcard.MaskNumber(idcardsim.CanaryResident) {
		t.Fatalf("login: %s", r.Completion.Raw)
	}
	hub.mu.Lock()
	numbers := hub.numbers
	hub.mu.Unlock()
	if len(numbers) != 1 || numbers[0] != idcardsim.CanaryResident {
		t.Fatalf("the hub got numbers %q", numbers)
	}
	noCanary(t, "a message to the app", received(c)...)
	noCanary(t, "the logs", k.logs.String())

	// A kiosk that signs with a key the hub does not know is refused.
	login2 := localapi.AuthenticatorFunc(func(ctx context.Context, card wire.IDCard) (kiosklogin.Session, error) {
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		return kiosklogin.Login(ctx, hub.Client(), hub.URL, "k-001", other, card)
	})
	k2 := startKiosk(t, kioskOptions{login: login2, card: idcardsim.Resident()})
	expect(t, k2.dial(t).Do("Login.IdCard", nil, 20*time.Second), "commandErrorCode", "loginRefused")
	k3 := startKiosk(t, kioskOptions{card: idcardsim.Resident()}) // not enrolled: no Authenticator
	expect(t, k3.dial(t).Do("Login.IdCard", nil, 20*time.Second), "unsupportedCommand", "")
}
