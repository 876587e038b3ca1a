package identity_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/kioskfleet/kioskfleet/hub/identity"
	"github.com/kioskfleet/kioskfleet/hub/identity/identitytest"
	"github.com/kioskfleet/kioskfleet/hub/store"
)

// codeBook is an SMS sender that keeps the last code of every number, for benchmarks.
type codeBook struct {
	mu    sync.Mutex
	codes map[string]string
}

func (c *codeBook) SendCode(_ context.Context, to, code string, _ time.Duration, _ string) error {
	c.mu.Lock()
	c.codes[to] = code
	c.mu.Unlock()
	return nil
}

func (c *codeBook) code(to string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.codes[to]
}

// BenchmarkPasskeyLogin: whole passkey logins of a web client, in process, in parallel. One op
// is authorize, the login page, the ceremony's begin, the assertion signed by the software
// authenticator and verified (ES256), the code sent back, and the code exchanged for tokens.
// It reports logins/s and the process's CPU time per login (client and provider together).
func BenchmarkPasskeyLogin(b *testing.B) {
	e, file := citizenEnv(b)
	r := newRP(b, e, "rp", "rp-secret")
	auth := &identitytest.Authenticator{Origin: e.Issuer}
	reg := e.NewBrowser()
	login, err := reg.Get(e.Issuer + "/oidc/me")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := reg.PhoneLogin(login, canaryPhone, file); err != nil {
		b.Fatal(err)
	}
	acct, err := reg.Get(e.Issuer + "/oidc/me")
	if err != nil {
		b.Fatal(err)
	}
	if err := reg.AddPasskey(acct, auth, "bench"); err != nil {
		b.Fatal(err)
	}
	h := e.P.Handler()
	// Citizens log in at once: 16 logins in flight per CPU, each waiting on its own requests.
	b.SetParallelism(16)
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		br := e.NewBrowser()
		jar, _ := cookiejar.New(nil)
		br.C.Jar, br.C.Transport = jar, inProcess{h}
		token := &http.Client{Transport: inProcess{h}}
		for pb.Next() {
			v := oauth2.GenerateVerifier()
			p, err := br.Get(r.conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("prompt", "login")))
			if err == nil {
				p, err = br.PasskeyLogin(p, auth)
			}
			if err != nil {
				b.Error(err)
				return
			}
			loc, _ := url.Parse(p.Loc)
			req, _ := http.NewRequest(http.MethodPost, e.Issuer+"/oidc/token", strings.NewReader(url.Values{
				"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {e.Callback},
				"code_verifier": {v}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("rp", "rp-secret")
			resp, err := token.Do(req)
			if err != nil || resp.StatusCode != 200 {
				b.Errorf("token: %v %v", resp.StatusCode, err)
				return
			}
			resp.Body.Close()
		}
	})
	rate(b, "logins/s")
	// Client and provider share the process: this is the CPU of both, per login.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/login")
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPhoneCodeVerify: phone-code logins of known numbers at 500 per second (one op is
// one login, 2 ms of schedule); reports the latency percentiles.
func BenchmarkPhoneCodeVerify(b *testing.B) {
	book := &codeBook{codes: map[string]string{}}
	e := identitytest.New(b, func(c *identity.Config) {
		c.SMS, c.PhoneCodes = book, store.PhoneCodeLimits{Window: time.Hour, MaxSends: 100, MinInterval: time.Nanosecond}
	})
	ctx := context.Background()
	numbers := make([]string, b.N)
	for i := range numbers {
		numbers[i] = fmt.Sprintf("139%08d", i)
		for range 2 { // the first login registers the number; the second code is the benchmark's
			e164, err := e.P.SendPhoneCode(ctx, numbers[i], "zh")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := e.P.PhoneLogin(ctx, e164, book.code(e164)); err != nil && numbers[i] != "" {
				b.Fatal(err)
			}
		}
		e164, _ := e.P.SendPhoneCode(ctx, numbers[i], "zh")
		numbers[i] = e164
	}
	openLoop(b, "phone code login", 2*time.Millisecond, func(i int) error {
		_, err := e.P.PhoneLogin(ctx, numbers[i], book.code(numbers[i]))
		return err
	})
}
