// Package sms sends the one-time login codes of the hub's OpenID Provider (hub/identity
// SMSSender) to phone numbers. Gateway posts each code to an SMS gateway over HTTPS, configured
// by URL and key; DevFile appends codes to a file and is for development and tests only.
//
// The gateway's shape (what a carrier adapter or an SMS service must accept):
//
//	POST {URL}
//	Authorization: Bearer {key}
//	Content-Type: application/json
//	Idempotency-Key: {random, the same on a retry of one message}
//
//	{"to": "+8613800138000", "template": "login_code", "lang": "zh-CN",
//	 "params": {"code": "123456", "minutes": "5"}}
//
// Any 2xx answer means the gateway took the message; a 4xx is refused for good, a 5xx or no
// answer is tried once more with the same Idempotency-Key. The text itself lives in the
// gateway's template (carriers in China send only registered templates with a signature).
package sms

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrRefused marks a message the gateway refused (4xx): retrying will not help.
var ErrRefused = errors.New("sms: refused by the gateway")

// Template is the gateway template of the login code.
const Template = "login_code"

// Gateway sends codes to an SMS gateway over HTTP.
type Gateway struct {
	url    string
	key    string
	client *http.Client
}

// NewGateway returns a gateway at rawURL (https, or http on loopback only) that authenticates
// with key. client may be nil (a client with a 10 s timeout).
func NewGateway(rawURL, key string, client *http.Client) (*Gateway, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && loopback(u.Hostname()))) {
		return nil, fmt.Errorf("sms: gateway url %q: want https://host/path (http only on loopback)", rawURL)
	}
	if key == "" {
		return nil, errors.New("sms: gateway key is empty")
	}
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return &Gateway{url: rawURL, key: key, client: client}, nil
}

func loopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

type message struct {
	To       string            `json:"to"`
	Template string            `json:"template"`
	Lang     string            `json:"lang"`
	Params   map[string]string `json:"params"`
}

func lang(l string) string {
	if l == "en" {
		return "en"
	}
	return "zh-CN"
}

// SendCode sends code to the number (E.164), valid for ttl, in the citizen's language (zh or en).
func (g *Gateway) SendCode(ctx context.Context, to, code string, ttl time.Duration, language string) error {
	body, err := json.Marshal(message{To: to, Template: Template, Lang: lang(language),
		Params: map[string]string{"code": code, "minutes": strconv.Itoa(int(ttl / time.Minute))}})
	if err != nil {
		return err
	}
	key := make([]byte, 16)
	rand.Read(key)
	idem := base64.RawURLEncoding.EncodeToString(key)
	err = g.post(ctx, body, idem)
	if err != nil && !errors.Is(err, ErrRefused) && ctx.Err() == nil {
		err = g.post(ctx, body, idem) // once more, the same message: the gateway drops a duplicate
	}
	return err
}

func (g *Gateway) post(ctx context.Context, body []byte, idem string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+g.key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", idem)
	resp, err := g.client.Do(req)
	if err != nil {
		return fmt.Errorf("sms: gateway: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return fmt.Errorf("%w: %s: %s", ErrRefused, resp.Status, printable(msg))
	}
	return fmt.Errorf("sms: gateway: %s: %s", resp.Status, printable(msg))
}

// printable keeps an error body short and on one line.
func printable(b []byte) string {
	return strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "?")), " ")
}

// DevFile appends every code, with its number, to a file: for development and tests only, never
// in production (it keeps phone numbers and live codes in clear text). The hub uses it only when
// told to (fleet-hub --sms-dev-file).
type DevFile struct {
	mu   sync.Mutex
	path string
}

// NewDevFile returns a sender appending to path (created mode 0600 on the first code).
func NewDevFile(path string) (*DevFile, error) {
	if path == "" {
		return nil, errors.New("sms: dev file path is empty")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sms: dev file: %w", err)
	}
	return &DevFile{path: path}, nil
}

// SendCode appends "RFC3339-time number code" as one line.
func (d *DevFile) SendCode(_ context.Context, to, code string, ttl time.Duration, _ string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	f, err := os.OpenFile(d.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sms: dev file: %w", err)
	}
	_, err = fmt.Fprintf(f, "%s %s %s valid %s\n", time.Now().UTC().Format(time.RFC3339), to, code, ttl)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
