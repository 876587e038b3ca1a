package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func selfSigned(t testing.TB) (*x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestCAHashOpenSSL: the pin is the one the docs tell operators to compute with openssl.
func TestCAHashOpenSSL(t *testing.T) {
	cert, certPEM := selfSigned(t)
	got := CAHash(cert)
	if !strings.HasPrefix(got, "sha256:") || len(got) != len("sha256:")+64 {
		t.Fatalf("CAHash = %q", got)
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	f := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(f, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", "openssl x509 -pubkey -noout -in "+f+" | openssl pkey -pubin -outform der | sha256sum").Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "sha256:" + strings.Fields(string(out))[0]; got != want {
		t.Errorf("CAHash = %s, openssl says %s", got, want)
	}
}

func TestEnrollToken(t *testing.T) {
	pin := "sha256:" + strings.Repeat("ab", 32)
	tok := EnrollToken{Secret: "kfe_" + strings.Repeat("0f", 20), CAHash: pin}
	s := tok.String()
	if s != tok.Secret+"."+strings.Repeat("ab", 32) {
		t.Fatalf("String = %q", s)
	}
	for _, in := range []string{s, tok.Secret + "." + pin, tok.Secret + "." + strings.ToUpper(strings.Repeat("ab", 32))} {
		got, err := ParseEnrollToken(in)
		if err != nil || got != tok {
			t.Errorf("ParseEnrollToken(%q) = %+v, %v; want %+v", in, got, err, tok)
		}
	}
	for in, want := range map[string]string{
		tok.Secret:                    "no CA pin",
		"kfa_" + s[4:]:                "not a kfe_ secret",
		"kfe_xyz." + pin[7:]:          "not a kfe_ secret",
		tok.Secret + "." + pin[7:70]:  "not 64 hex digits",
		tok.Secret + ".sha1:" + pin:   "not 64 hex digits",
		tok.Secret + "." + pin + ".x": "not 64 hex digits",
		"":                            "no CA pin",
	} {
		_, err := ParseEnrollToken(in)
		if !errors.Is(err, ErrBadEnrollToken) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseEnrollToken(%q) = %v, want %q", in, err, want)
		}
	}
}

// FuzzParseEnrollToken: any string either parses into a token that prints back to an equivalent
// one, or is refused with ErrBadEnrollToken; nothing panics.
func FuzzParseEnrollToken(f *testing.F) {
	f.Add("kfe_" + strings.Repeat("0f", 20) + "." + strings.Repeat("ab", 32))
	f.Add("kfe_00.sha256:")
	f.Add("..")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseEnrollToken(s)
		if err != nil {
			if !errors.Is(err, ErrBadEnrollToken) {
				t.Fatalf("error %v is not ErrBadEnrollToken", err)
			}
			return
		}
		again, err := ParseEnrollToken(tok.String())
		if err != nil || again != tok {
			t.Fatalf("round trip of %q: %+v, %v", s, again, err)
		}
	})
}
