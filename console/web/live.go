package web

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// eventSource is a Hub that streams notices of kiosk changes (api.Client, GET /api/v1/feed):
// live pages then update when the hub says a kiosk changed, not only every Refresh.
type eventSource interface {
	Feed(ctx context.Context, fn func(api.Notice)) error
}

var _ eventSource = (*api.Client)(nil)

// Live page timing.
const (
	liveCoalesce  = 200 * time.Millisecond // notices this close together give one update
	liveSlowest   = 30 * time.Second       // with notices, the page is still redrawn this often (ages: "3 min ago")
	liveWriteWait = 10 * time.Second
	livePing      = 30 * time.Second
	liveRetry     = 2 * time.Second // after the hub's event stream failed
)

// The WebSocket handshake accepts only this console's pages (gorilla's default origin check,
// RFC 6455 §10.2): another site cannot open a live page with the user's cookie.
var upgrader = websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 16 << 10, EnableCompression: true}

// live serves GET /live?page=<a page's live URL>: a WebSocket (RFC 6455) on which the console
// sends the page's live part, {"html": ...} as GET <page>?live=1 answers it, at once, then
// whenever the hub notifies a change of a kiosk the user may see, and every Refresh (every
// liveSlowest when the hub notifies). Each update is rendered with the user's session, so a
// logout or an ended session ends the live page too.
func (s *Server) live(w http.ResponseWriter, r *http.Request) {
	page := r.URL.Query().Get("page")
	target, err := url.Parse(page)
	if err != nil || localPath(page) != page || target.Query().Get("live") != "1" || target.Path == "/live" {
		http.Error(w, "page: want the live URL of a console page", http.StatusBadRequest)
		return
	}
	conn, err := upgrader.Upgrade(w, r, nil) // answers a bad handshake itself
	if err != nil {
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		conn.Close()
		wg.Wait()
	}()
	// The browser sends nothing but pongs and the close: reading notices that it left.
	conn.SetReadLimit(512)
	_ = conn.SetReadDeadline(time.Now().Add(2 * livePing))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(2 * livePing)) })
	wg.Go(func() {
		defer cancel()
		for {
			if _, _, err := conn.NextReader(); err != nil {
				return
			}
		}
	})
	changed := make(chan struct{}, 1)
	every := s.cfg.Refresh
	var ended <-chan struct{} // nil in setup mode
	if u, _ := r.Context().Value(userKey{}).(*user); u != nil {
		if u.sess != nil {
			ended = u.sess.ended
		}
		if _, ok := u.hub.(eventSource); ok {
			every = max(every, liveSlowest)
			wg.Go(func() { s.follow(ctx, r, changed) })
		}
	}
	tick, ping := time.NewTicker(every), time.NewTicker(livePing)
	defer tick.Stop()
	defer ping.Stop()
	var last []byte
	for {
		msg, ok := s.renderLive(ctx, r, target)
		if !bytes.Equal(msg, last) {
			_ = conn.SetWriteDeadline(time.Now().Add(liveWriteWait))
			if err := conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				return
			}
			last = msg
		}
		if !ok {
			conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "logged out"),
				time.Now().Add(time.Second))
			return
		}
	wait:
		select {
		case <-ctx.Done():
			return
		case <-ended: // logged out: the next render says so and closes
			ended = nil
		case <-tick.C:
		case <-changed:
			if !sleep(ctx, liveCoalesce) {
				return
			}
			select {
			case <-changed:
			default:
			}
		case <-ping.C:
			if conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(liveWriteWait)) != nil {
				return
			}
			goto wait
		}
	}
}

// follow reads the hub's event stream with the user's token, signalling changed at each notice,
// and reconnects (with a fresh token) when the hub ends it, until ctx ends or the session does.
func (s *Server) follow(ctx context.Context, r *http.Request, changed chan<- struct{}) {
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	for ctx.Err() == nil {
		u := s.sessionUser(ctx, r)
		if u == nil {
			notify() // the next render says the session ended
			return
		}
		es, ok := u.hub.(eventSource)
		if !ok {
			return
		}
		err := es.Feed(ctx, func(api.Notice) { notify() })
		if ctx.Err() != nil {
			return
		}
		notify() // notices may have been missed between two streams
		if err != nil {
			s.cfg.Log.Info("hub event stream failed", "err", err)
			if !sleep(ctx, liveRetry) {
				return
			}
		}
	}
}

// sleep waits d, or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// renderLive renders a page's live part as the user of r's session; false when the session has
// ended (the message then says so).
func (s *Server) renderLive(ctx context.Context, r *http.Request, target *url.URL) ([]byte, bool) {
	u := s.sessionUser(ctx, r)
	if u == nil {
		b, _ := json.Marshal(map[string]string{"error": s.lang(discard{}, r).T("logged-out")})
		return b, false
	}
	req, err := http.NewRequestWithContext(context.WithValue(ctx, userKey{}, u), http.MethodGet, target.String(), nil)
	if err != nil {
		return nil, false
	}
	req.Host = r.Host
	for _, h := range []string{"Cookie", "Accept-Language"} {
		req.Header[h] = r.Header[h]
	}
	var out bufferWriter
	s.mux.ServeHTTP(&out, req)
	return out.buf.Bytes(), true
}

// bufferWriter keeps a response in memory.
type bufferWriter struct {
	h   http.Header
	buf bytes.Buffer
}

func (b *bufferWriter) Header() http.Header {
	if b.h == nil {
		b.h = http.Header{}
	}
	return b.h
}
func (b *bufferWriter) Write(p []byte) (int, error) { return b.buf.Write(p) }
func (b *bufferWriter) WriteHeader(int)             {}

// discard is a ResponseWriter whose output nobody reads.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) WriteHeader(int)             {}
