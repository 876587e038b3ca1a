package identity

import (
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskfleet/kioskfleet/hub/ratelimit"
)

// secureHeaders sets what every answer of the provider carries: no MIME sniffing, no referrer
// (URLs of the flows carry codes and user codes).
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// pageCSP is the policy of the login, consent, device approval, account and message pages:
// nothing loaded but their inline style and the provider's own script (passkeys), no framing
// (clickjacking: frame-ancestors, and X-Frame-Options for older browsers), no <base>, forms
// posted to the provider only.
const pageCSP = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; base-uri 'none'; " +
	"frame-ancestors 'none'; form-action 'self'"

// pageHeaders sets the security headers of a page; they carry CSRF tokens and user codes, so
// they are never stored. A page of an authorization request (its ID in the query, as every form
// of the flow keeps it) may also send its form's answer on to the client: a browser applies
// form-action to the redirects after a form too, so the client's redirect URI is allowed.
func (p *Provider) pageHeaders(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		csp := pageCSP
		if id := r.URL.Query().Get("id"); id != "" {
			if a, err := p.st.GetAuthRequest(r.Context(), id); err == nil {
				if src := cspSource(a.RedirectURI); src != "" {
					csp += " " + src
				}
			}
		}
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		next(w, r)
	}
}

var cspHost = regexp.MustCompile(`^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$`)
var cspScheme = regexp.MustCompile(`^[a-z][a-z0-9+.\-]*$`)

// cspSource returns the CSP source expression (CSP3 §2.3.1) of a redirect URI's origin: scheme,
// host and port for http(s), the scheme alone for an app's own scheme; "" for anything that
// would not make a well-formed expression.
func cspSource(redirect string) string {
	u, err := url.Parse(redirect)
	if err != nil || !cspScheme.MatchString(u.Scheme) {
		return ""
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return u.Scheme + ":"
	}
	if !cspHost.MatchString(u.Host) {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// limiters are the per-address limits of the endpoints where an attacker guesses: password
// logins, the token endpoint, device authorization requests and user code entries.
type limiters struct {
	login, token, deviceAuth, userCode *ratelimit.Limiter
	phoneSend, phoneVerify             *ratelimit.Limiter
	trusted                            []netip.Prefix
	refused                            *prometheus.CounterVec
}

func newLimiters(cfg Config) limiters {
	return limiters{
		login: ratelimit.New(cfg.LoginRate, cfg.Now), token: ratelimit.New(cfg.TokenRate, cfg.Now),
		deviceAuth: ratelimit.New(cfg.DeviceAuthRate, cfg.Now), userCode: ratelimit.New(cfg.UserCodeRate, cfg.Now),
		phoneSend: ratelimit.New(cfg.PhoneSendRate, cfg.Now), phoneVerify: ratelimit.New(cfg.PhoneVerifyRate, cfg.Now),
		trusted: cfg.TrustedProxies,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kf_identity_rate_limited_total",
			Help: "Requests refused (429) by the per-address limit of an identity endpoint."}, []string{"endpoint"}),
	}
}

// limit answers 429 with Retry-After (RFC 6585 §4) to a client address past the limiter's rate;
// only the methods given count (all when none is).
func (p *Provider) limit(l *ratelimit.Limiter, endpoint string, next http.HandlerFunc, methods ...string) http.HandlerFunc {
	if l == nil {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if len(methods) > 0 && !slices.Contains(methods, r.Method) {
			next(w, r)
			return
		}
		addr := ratelimit.ClientAddr(r, p.lim.trusted)
		ok, retry := l.Allow(addr)
		if !ok {
			p.lim.refused.WithLabelValues(endpoint).Inc()
			if p.cfg.OnRefused != nil {
				p.cfg.OnRefused(RateLimited, "", addr.String())
			}
			secs := int64((retry + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "too many requests from your address; try again in "+strconv.FormatInt(secs, 10)+" s", http.StatusTooManyRequests)
			return
		}
		next(w, r)
	}
}

// Collector returns the provider's metrics: kf_identity_rate_limited_total{endpoint}, the
// requests refused by the per-address limits.
func (p *Provider) Collector() prometheus.Collector { return p.lim.refused }
