package bundles

import (
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/kioskfleet/kioskfleet/agent/localapi"
)

// Kiosk apps are served by the agent on a loopback listener, each at an origin of its own,
// http://APP.localhost:PORT (RFC 6761 §6.3: every name under localhost is the loopback), so that
// the local device API tells them apart by their Origin and gives each only the services its
// manifest asks for.

// Origin is the origin of app on the apps listener's port.
func Origin(app, port string) string { return "http://" + app + ".localhost:" + port }

// ServeHTTP serves the installed version of the app the request's host names: its files, the
// entry page at its path, no directory listings.
func (m *Manager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	name, ok := strings.CutSuffix(strings.ToLower(host), ".localhost")
	if !ok {
		http.Error(w, "not a kiosk app's address (APP.localhost)", http.StatusNotFound)
		return
	}
	m.mu.Lock()
	a, ok := m.active[name]
	m.mu.Unlock()
	if !ok {
		http.Error(w, "no app "+name+" installed on this kiosk", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := path.Clean("/" + r.URL.Path)
	if p == "/" {
		p = "/" + a.Manifest.Entry
	}
	file := filepath.Join(a.Dir, filepath.FromSlash(p))
	fi, err := os.Stat(file)
	if err == nil && fi.IsDir() {
		file = filepath.Join(file, "index.html")
		fi, err = os.Stat(file)
	}
	if err != nil || fi.IsDir() {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache") // the same URL serves the next version once it is active
	h.Set("X-Kiosk-App", a.Name+"@"+a.Version)
	http.ServeFile(w, r, file)
}

// Apps is the local device API's view of the installed apps (localapi.Apps) on the apps
// listener's port: each app's origin and the services its manifest asks for.
func (m *Manager) Apps(port string) localapi.Apps { return appsAt{m, port} }

type appsAt struct {
	m    *Manager
	port string
}

// AppForOrigin implements localapi.Apps.
func (a appsAt) AppForOrigin(origin string) (localapi.Manifest, bool) {
	rest, ok := strings.CutPrefix(origin, "http://")
	if !ok {
		return localapi.Manifest{}, false
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil || port != a.port {
		return localapi.Manifest{}, false
	}
	name, ok := strings.CutSuffix(host, ".localhost")
	if !ok {
		return localapi.Manifest{}, false
	}
	a.m.mu.Lock()
	app, ok := a.m.active[name]
	a.m.mu.Unlock()
	if !ok {
		return localapi.Manifest{}, false
	}
	return localapi.Manifest{App: app.Name, Name: app.Name + " " + app.Version, Origins: []string{origin}, Services: app.Manifest.Services}, true
}
