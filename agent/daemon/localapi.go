package daemon

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/kioskfleet/kioskfleet/agent/kiosklogin"
	"github.com/kioskfleet/kioskfleet/agent/localapi"
	"github.com/kioskfleet/kioskfleet/agent/shell"
	"github.com/kioskfleet/kioskfleet/pkg/wire"
)

// CheckLocalAPI checks a --local-api address: "" or "0" (off), or host:port on a loopback address,
// since the local device API drives the kiosk's card reader and printers for whoever connects.
func CheckLocalAPI(addr string) error {
	return checkLoopback("--local-api", "the local device API listens", "8090", addr)
}

// checkLoopback checks the address addr of flag: "" or "0" (off), or host:port on a loopback
// address; what says what listens there, example a port to show.
func checkLoopback(flag, what, example, addr string) error {
	if LocalAPIOff(addr) {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: want host:port on loopback, e.g. 127.0.0.1:%s (0: off): %w", flag, addr, example, err)
	}
	if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" {
		return fmt.Errorf("%s %q: %s on loopback only (127.0.0.1, ::1 or localhost), never on %q", flag, addr, what, host)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("%s %q: port: %w", flag, addr, err)
	}
	return nil
}

// LocalAPIOff reports whether addr turns the local device API off.
func LocalAPIOff(addr string) bool { return addr == "" || addr == "0" }

// openLocalAPI listens on the local API's loopback address and builds the API on the device
// manager, and the kiosk shell (agent/shell) on the same listener: its origin is the listener's.
func (a *Agent) openLocalAPI() error {
	if LocalAPIOff(a.cfg.LocalAPI) {
		return nil
	}
	if err := CheckLocalAPI(a.cfg.LocalAPI); err != nil {
		return err
	}
	if a.devs == nil {
		return errors.New("--local-api needs --devices: the local device API serves the peripherals of the device configuration")
	}
	ln, err := net.Listen("tcp", a.cfg.LocalAPI)
	if err != nil {
		return fmt.Errorf("agent: local device API: %w", err)
	}
	var login localapi.Authenticator
	hc := a.id.HTTPClient() // trusts only the hub CA pinned at enrollment
	hc.Timeout = 15 * time.Second
	if key := a.id.Signer(); key != nil && len(a.id.HubURLs) > 0 {
		login = hubLogin{hc: hc, urls: a.id.HubURLs, deviceID: a.id.DeviceID, key: key}
	}
	devs, err := a.openShell(hc)
	if err != nil {
		ln.Close()
		return err
	}
	if login != nil {
		login = a.shell.Authenticator(login)
	}
	var apps localapi.Apps
	if a.bundles != nil && a.appsLn != nil {
		_, port, _ := net.SplitHostPort(a.appsLn.Addr().String())
		apps = a.bundles.Apps(port) // the installed kiosk apps, each with its manifest's services
	}
	api, err := localapi.New(localapi.Config{Devices: devs, Log: a.log.With("component", "localapi"),
		ShellOrigins: localapi.ShellOrigins(ln.Addr().String()), Login: login, Apps: apps})
	if err != nil {
		ln.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(localapi.Path, api)
	mux.Handle("/", a.shell)
	a.local = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	a.localLn, a.localAPI = ln, api
	return nil
}

// hubLogin logs citizens in at the hub with the card read at the kiosk (agent/kiosklogin),
// signed with the kiosk's device key.
type hubLogin struct {
	hc       *http.Client // trusts only the hub CA pinned at enrollment
	urls     []string     // the hub's replicas
	deviceID string
	key      *ecdsa.PrivateKey
}

var (
	_ localapi.Authenticator = hubLogin{}
	_ shell.CardBinder       = hubLogin{}
)

// LoginIDCard implements localapi.Authenticator.
func (l hubLogin) LoginIDCard(ctx context.Context, card wire.IDCard) (kiosklogin.Session, error) {
	return l.login(ctx, card, "")
}

// BindIDCard implements shell.CardBinder: the login binds the card to the account that approved
// the QR code of deviceCode (real-name binding).
func (l hubLogin) BindIDCard(ctx context.Context, card wire.IDCard, deviceCode string) (kiosklogin.Session, error) {
	return l.login(ctx, card, deviceCode)
}

// login tries the hub's URLs from a random one, going on to the next only when one does not
// answer at all.
func (l hubLogin) login(ctx context.Context, card wire.IDCard, deviceCode string) (kiosklogin.Session, error) {
	first := rand.IntN(len(l.urls))
	var err error
	for i := range l.urls {
		u := l.urls[(first+i)%len(l.urls)]
		var s kiosklogin.Session
		if deviceCode == "" {
			s, err = kiosklogin.Login(ctx, l.hc, u, l.deviceID, l.key, card)
		} else {
			s, err = kiosklogin.Bind(ctx, l.hc, u, l.deviceID, l.key, card, deviceCode)
		}
		var unreachable *url.Error
		if err == nil || !errors.As(err, &unreachable) || ctx.Err() != nil {
			return s, err
		}
	}
	return kiosklogin.Session{}, err
}

// LocalAPIAddr returns the address the local device API listens on ("" when off).
func (a *Agent) LocalAPIAddr() string {
	if a.localLn == nil {
		return ""
	}
	return a.localLn.Addr().String()
}

// serveLocalAPI serves the local API until ctx is done, then closes its connections (their
// commands are canceled) and waits for them.
func (a *Agent) serveLocalAPI(ctx context.Context) {
	a.log.Info("local device API listening", "addr", a.LocalAPIAddr(), "path", localapi.Path)
	a.log.Info("kiosk shell served", "url", "http://"+a.LocalAPIAddr()+shell.Prefix)
	served := make(chan error, 1)
	go func() { served <- a.local.Serve(a.localLn) }()
	shellDone := make(chan struct{})
	go func() { defer close(shellDone); _ = a.shell.Run(ctx) }()
	defer func() { <-shellDone }() // the session in progress is wiped before the agent stops
	select {
	case err := <-served:
		a.log.Error("local device API stopped", "err", err)
		return
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := a.localAPI.Shutdown(sctx); err != nil {
		a.log.Warn("local device API: connections still open at shutdown", "err", err)
	}
	if err := a.local.Shutdown(sctx); err != nil {
		a.log.Warn("local device API: shutdown", "err", err)
	}
	<-served
}
