package connector

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"time"

	"gopkg.in/yaml.v3"
)

// Connector types.
const (
	TypeOIDC   = "oidc"
	TypeWeChat = "wechat"
	TypeAlipay = "alipay"
)

// File is a connectors file (YAML):
//
//	connectors:
//	  - id: province            # in URLs (/oidc/upstream/province/callback) and in links
//	    type: oidc
//	    name: 省政务服务网        # on the login button
//	    issuer: https://id.example.gov.cn
//	    client_id: kioskfleet
//	    client_secret_env: KF_PROVINCE_SECRET  # or client_secret
//	    ca_file: /etc/kioskfleet/province-ca.pem  # besides the system's roots
//	  - id: wechat
//	    type: wechat
//	    name: 微信
//	    app_id: wx0123456789abcdef
//	    app_secret_env: KF_WECHAT_SECRET
//	    scope: snsapi_login     # or snsapi_userinfo, snsapi_base (公众号网页授权)
//	  - id: alipay
//	    type: alipay
//	    name: 支付宝
//	    app_id: "2021000000000000"
//	    private_key_file: /etc/kioskfleet/alipay-app-key.pem
//	    alipay_public_key_file: /etc/kioskfleet/alipay-public-key.pem
//	    scope: auth_user        # or auth_base
//
// auth_url, api_url (WeChat) and gateway (Alipay) replace the upstream's addresses (a sandbox).
type File struct {
	Connectors []Config `yaml:"connectors"`
}

// Config is one connector. Which fields apply depends on Type.
type Config struct {
	ID   string `yaml:"id"`
	Type string `yaml:"type"`
	Name string `yaml:"name"`

	// OIDC.
	Issuer          string   `yaml:"issuer"`
	ClientID        string   `yaml:"client_id"`
	ClientSecret    string   `yaml:"client_secret"`
	ClientSecretEnv string   `yaml:"client_secret_env"`
	Scopes          []string `yaml:"scopes"`

	// WeChat and Alipay.
	AppID        string `yaml:"app_id"`
	AppSecret    string `yaml:"app_secret"`
	AppSecretEnv string `yaml:"app_secret_env"`
	Scope        string `yaml:"scope"`
	AuthURL      string `yaml:"auth_url"`
	APIURL       string `yaml:"api_url"`
	Gateway      string `yaml:"gateway"`
	// Alipay: the app's RSA private key (PKCS #1 or #8 PEM) and Alipay's public key (PEM, or the
	// bare base64 the Alipay console shows).
	PrivateKeyFile      string `yaml:"private_key_file"`
	AlipayPublicKeyFile string `yaml:"alipay_public_key_file"`

	// CAFile holds PEM certificates trusted besides the system's roots for this upstream.
	CAFile string `yaml:"ca_file"`
}

var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// Load reads and checks a connectors file, reporting every problem at once. getenv resolves the
// *_env fields (os.Getenv when nil).
func Load(path string, getenv func(string) string) ([]Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return Parse(b, getenv)
}

// Parse reads and checks a connectors file's content, reporting every problem at once: unknown
// keys, missing or malformed fields, duplicate IDs, unreadable keys and CA files.
func Parse(b []byte, getenv func(string) string) ([]Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	var errs []error
	seen := map[string]bool{}
	for i := range f.Connectors {
		c := &f.Connectors[i]
		if seen[c.ID] {
			errs = append(errs, fmt.Errorf("connector %d: id %q used twice", i+1, c.ID))
		}
		seen[c.ID] = true
		if err := c.check(getenv); err != nil {
			errs = append(errs, fmt.Errorf("connector %d (%s): %w", i+1, c.ID, err))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w:\n%w", ErrConfig, errors.Join(errs...))
	}
	return f.Connectors, nil
}

// check validates c and resolves its *_env secrets.
func (c *Config) check(getenv func(string) string) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !idRE.MatchString(c.ID) {
		bad("id %q: want 1-32 of a-z, 0-9, _ and -", c.ID)
	}
	if c.Name == "" {
		bad("name missing (shown on the login button)")
	}
	secret := func(field string, v *string, env string) {
		if env != "" {
			if *v != "" {
				bad("%s and %s_env: choose one", field, field)
			}
			if *v = getenv(env); *v == "" {
				bad("%s_env: environment variable %s is empty or unset", field, env)
			}
		} else if *v == "" {
			bad("%s (or %s_env) missing", field, field)
		}
	}
	httpsURL := func(field, v string, required bool) {
		if v == "" {
			if required {
				bad("%s missing", field)
			}
			return
		}
		if u, err := url.Parse(v); err != nil || u.Scheme != "https" || u.Host == "" || u.Fragment != "" {
			bad("%s %q: want an https URL", field, v)
		}
	}
	switch c.Type {
	case TypeOIDC:
		httpsURL("issuer", c.Issuer, true)
		if c.ClientID == "" {
			bad("client_id missing")
		}
		secret("client_secret", &c.ClientSecret, c.ClientSecretEnv)
	case TypeWeChat:
		if c.AppID == "" {
			bad("app_id missing")
		}
		secret("app_secret", &c.AppSecret, c.AppSecretEnv)
		switch c.Scope {
		case "":
			c.Scope = wechatScopeLogin
		case wechatScopeLogin, wechatScopeBase, wechatScopeUserinfo:
		default:
			bad("scope %q: want snsapi_login, snsapi_userinfo or snsapi_base", c.Scope)
		}
		httpsURL("auth_url", c.AuthURL, false)
		httpsURL("api_url", c.APIURL, false)
	case TypeAlipay:
		if c.AppID == "" {
			bad("app_id missing")
		}
		switch c.Scope {
		case "":
			c.Scope = alipayScopeUser
		case alipayScopeUser, alipayScopeBase:
		default:
			bad("scope %q: want auth_user or auth_base", c.Scope)
		}
		if _, err := readPrivateKey(c.PrivateKeyFile); err != nil {
			bad("private_key_file: %w", err)
		}
		if _, err := readPublicKey(c.AlipayPublicKeyFile); err != nil {
			bad("alipay_public_key_file: %w", err)
		}
		httpsURL("auth_url", c.AuthURL, false)
		httpsURL("gateway", c.Gateway, false)
	default:
		bad("type %q: want oidc, wechat or alipay", c.Type)
	}
	if c.CAFile != "" {
		if _, err := c.roots(); err != nil {
			bad("ca_file: %w", err)
		}
	}
	return errors.Join(errs...)
}

// roots is the system's roots plus CAFile's certificates.
func (c *Config) roots() (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if c.CAFile == "" {
		return pool, nil
	}
	b, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, err
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate", c.CAFile)
	}
	return pool, nil
}

// httpClient is the connector's client to its upstream: TLS 1.2 or later with the configured
// roots, bounded in time.
func (c *Config) httpClient() (*http.Client, error) {
	roots, err := c.roots()
	if err != nil {
		return nil, err
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: t, Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}

// Open returns the connector c configures; c must come from Load or Parse.
func Open(c Config) (Connector, error) {
	hc, err := c.httpClient()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrConfig, c.ID, err)
	}
	switch c.Type {
	case TypeOIDC:
		return newOIDC(c, hc), nil
	case TypeWeChat:
		return newWeChat(c, hc), nil
	case TypeAlipay:
		return newAlipay(c, hc)
	}
	return nil, fmt.Errorf("%w: %s: type %q", ErrConfig, c.ID, c.Type)
}
