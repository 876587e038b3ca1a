package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskfleet/kioskfleet/hub/connlimit"
	"github.com/kioskfleet/kioskfleet/pkg/logging"
)

// Limits bound what the hub holds for clients before it knows who they are, so that nobody
// without a credential can make it hold much memory or hold it long (issue 16). Zero fields take
// the defaults below; a negative count is no limit.
type Limits struct {
	HTTPReadTimeout  time.Duration // reading a whole request, body included; default 30 s
	HTTPWriteTimeout time.Duration // from the end of a request's header to the end of its answer; default 60 s
	HTTPIdleTimeout  time.Duration // a kept-alive connection waiting for its next request; default 2 min
	HTTPConnsPerAddr int           // open HTTP connections per client address; default 256
	// AnonBody bounds the request bodies the hub reads before it authenticates their sender
	// (enrollment, the OpenID Provider's endpoints); default 16 KiB. An enrollment takes under
	// 2 KB, with an RSA-4096 request.
	AnonBody int64

	MQTTConnectTimeout time.Duration // TLS handshake and CONNECT; default broker.DefaultConnectTimeout
	MQTTMaxConnect     int           // bytes of a CONNECT packet; default broker.DefaultMaxConnectSize
	MQTTPendingPerAddr int           // connections not yet admitted to a session, per client address; default broker.DefaultPendingPerAddr
	MQTTPending        int           // connections not yet admitted to a session, in all; default broker.DefaultPending
}

// HTTP defaults.
const (
	DefaultHTTPReadTimeout  = 30 * time.Second
	DefaultHTTPWriteTimeout = 60 * time.Second
	DefaultHTTPIdleTimeout  = 2 * time.Minute
	DefaultHTTPConnsPerAddr = 256
	DefaultAnonBody         = 16 << 10

	// readHeaderTimeout bounds a request's header (also within HTTPReadTimeout).
	readHeaderTimeout = 10 * time.Second
	// apiBody is the largest body of an authenticated API request (httpapi reads it only once
	// the caller is authenticated); adminBody the same for the identity provider's admin API.
	apiBody   = 1 << 20
	adminBody = 64 << 10
	// minAnonBody fits an enrollment with an RSA-4096 request.
	minAnonBody = 4 << 10
)

func (l *Limits) validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"http read timeout", l.HTTPReadTimeout}, {"http write timeout", l.HTTPWriteTimeout},
		{"http idle timeout", l.HTTPIdleTimeout}, {"mqtt connect timeout", l.MQTTConnectTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: %v: want > 0", d.name, d.v))
		}
	}
	if l.AnonBody != 0 && l.AnonBody < minAnonBody {
		errs = append(errs, fmt.Errorf("anonymous body limit: %d bytes: want at least %d", l.AnonBody, minAnonBody))
	}
	if l.MQTTMaxConnect != 0 && l.MQTTMaxConnect < minConnect {
		errs = append(errs, fmt.Errorf("mqtt max connect: %d bytes: want at least %d (a kiosk's CONNECT)", l.MQTTMaxConnect, minConnect))
	}
	return errors.Join(errs...)
}

// minConnect is the smallest CONNECT limit a kiosk with the longest device ID gets through: its
// CONNECT, Will included, is 188 bytes (95 with an ID as the hub issues them; TestAgentConnectFits).
const minConnect = 256

func (l *Limits) withDefaults() Limits {
	d := *l
	def := func(v *time.Duration, x time.Duration) {
		if *v == 0 {
			*v = x
		}
	}
	def(&d.HTTPReadTimeout, DefaultHTTPReadTimeout)
	def(&d.HTTPWriteTimeout, DefaultHTTPWriteTimeout)
	def(&d.HTTPIdleTimeout, DefaultHTTPIdleTimeout)
	if d.HTTPConnsPerAddr == 0 {
		d.HTTPConnsPerAddr = DefaultHTTPConnsPerAddr
	}
	if d.AnonBody == 0 {
		d.AnonBody = DefaultAnonBody
	}
	return d
}

// Reasons the HTTP side refuses, the values of kioskfleet_http_rejections_total's reason label.
const (
	refusedAddrLimit    = "addr_limit"     // a connection over the per-address limit (answered 503 or closed)
	refusedBodyTooLarge = "body_too_large" // a request body over its route's limit
	refusedBodyTimeout  = "body_timeout"   // a request body not received within the read timeout
)

// httpLimits applies Limits to the hub's HTTP side and counts what they refuse.
type httpLimits struct {
	lim      Limits
	conns    *connlimit.Counter
	refusals *prometheus.CounterVec
	log      *slog.Logger
	logEvery logging.Throttle
}

func newHTTPLimits(l Limits, reg prometheus.Registerer, log *slog.Logger) (*httpLimits, error) {
	h := &httpLimits{lim: l, log: log, conns: connlimit.New(connlimit.Limits{PerAddr: l.HTTPConnsPerAddr}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kioskfleet_http_rejections_total",
			Help: "Connections and requests the HTTP side refused before reading them, by reason."}, []string{"reason"})}
	for _, r := range []string{refusedAddrLimit, refusedBodyTooLarge, refusedBodyTimeout} {
		h.refusals.WithLabelValues(r)
	}
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kioskfleet_http_connections",
		Help: "Open HTTP connections."}, func() float64 { return float64(h.conns.Held()) })
	for _, c := range []prometheus.Collector{h.refusals, open} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("hub: metrics: %w", err)
		}
	}
	return h, nil
}

// server returns the HTTP server for handler, with the read, write and idle timeouts. Serve it
// on listener(ln).
func (h *httpLimits) server(handler http.Handler) *http.Server {
	return &http.Server{
		Handler:           h.refuseOverLimit(handler),
		ReadHeaderTimeout: min(readHeaderTimeout, h.lim.HTTPReadTimeout),
		ReadTimeout:       h.lim.HTTPReadTimeout,
		WriteTimeout:      h.lim.HTTPWriteTimeout,
		IdleTimeout:       h.lim.HTTPIdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelWarn),
		// Over TLS a client may speak HTTP/2: many requests on one connection. Few streams and
		// small windows keep a connection's share near an HTTP/1.1 one's, so that the per-address
		// limit still bounds memory (the defaults, 100+ streams and 1 MiB buffered, would not).
		// A stream's window is never below the 65,535 bytes a client may send before it has our
		// SETTINGS (RFC 9113 §6.9.2): a smaller one fails a large upload with FLOW_CONTROL_ERROR;
		// the connection's 64 KiB still bounds what all its streams hold.
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: 16, MaxReceiveBufferPerConnection: 64 << 10,
			MaxReceiveBufferPerStream: 64 << 10},
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if err := connlimit.RefusalOf(c); err != nil {
				return context.WithValue(ctx, refusedKey{}, err)
			}
			return ctx
		},
	}
}

// listener caps the connections per client address on ln.
func (h *httpLimits) listener(ln net.Listener) net.Listener {
	return &connlimit.Listener{Listener: ln, Counter: h.conns, OnRefuse: func(addr net.Addr, err error) {
		h.refused(refusedAddrLimit, "remote", addr.String(), "err", err)
	}}
}

func (h *httpLimits) refused(reason string, attrs ...any) {
	h.refusals.WithLabelValues(reason).Inc()
	h.logEvery.Log(context.Background(), h.log, slog.LevelWarn, "http refused", append([]any{"reason", reason}, attrs...)...)
}

type refusedKey struct{}

// refuseOverLimit answers every request on a connection over the per-address limit with 503 and
// closes it, without reading its body.
func (h *httpLimits) refuseOverLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err, _ := r.Context().Value(refusedKey{}).(error); err != nil {
			w.Header().Set("Connection", "close")
			w.Header().Set("Retry-After", "1")
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			endAfterAnswer(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// body bounds the request bodies next reads to n bytes (n <= 0: next bounds them itself) and
// counts bodies refused for their size or for arriving too slowly. A body cut by the read
// timeout also cancels the request's context, and a handler then answers nothing (its client
// seems gone): such a request is answered 408.
func (h *httpLimits) body(n int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := r.Body
		if n > 0 {
			b = http.MaxBytesReader(w, b, n)
		}
		cb := &countedBody{ReadCloser: b, h: h, r: r}
		r.Body = cb
		rw := &answered{ResponseWriter: w}
		next.ServeHTTP(rw, r)
		if cb.timedOut && !rw.wrote {
			w.Header().Set("Connection", "close")
			http.Error(w, fmt.Sprintf("request body not received within the read timeout (%v)", h.lim.HTTPReadTimeout), http.StatusRequestTimeout)
		}
		if cb.done {
			endAfterAnswer(w)
		}
	})
}

// endAfterAnswer ends the connection of a refused request as soon as its answer is written.
// After a handler, net/http reads what is left of an unread body (up to 256 KiB) to reuse the
// connection, for as long as the read timeout allows: a client that never sends the rest held
// the connection, its buffers and its goroutine for that long after the hub had answered (in
// the flood soak of issue 16, 317 of 573 flood connections the hub held were in that read).
// The answer is flushed before that read, so the client gets it; the rest of the body is not
// read (past 256 KiB, net/http does not read it either).
func endAfterAnswer(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}

// countedBody counts the first error of a request body that is a refusal.
type countedBody struct {
	io.ReadCloser
	h        *httpLimits
	r        *http.Request
	done     bool
	timedOut bool
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && !b.done {
		b.done = true
		var mb *http.MaxBytesError
		switch {
		case errors.As(err, &mb):
			b.h.refused(refusedBodyTooLarge, "remote", b.r.RemoteAddr, "path", b.r.URL.Path, "limit", mb.Limit)
		case errors.Is(err, os.ErrDeadlineExceeded):
			b.timedOut = true
			b.h.refused(refusedBodyTimeout, "remote", b.r.RemoteAddr, "path", b.r.URL.Path)
		}
	}
	return n, err
}

// answered records whether a handler wrote its answer's header.
type answered struct {
	http.ResponseWriter
	wrote bool
}

func (a *answered) WriteHeader(code int) {
	a.wrote = true
	a.ResponseWriter.WriteHeader(code)
}

func (a *answered) Write(p []byte) (int, error) {
	a.wrote = true
	return a.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (a long poll extends its deadlines).
func (a *answered) Unwrap() http.ResponseWriter { return a.ResponseWriter }
