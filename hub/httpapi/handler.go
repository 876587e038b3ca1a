package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/catalog"
	"github.com/kioskfleet/kioskfleet/hub/security"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/strictjson"
)

// Who may call an endpoint: a caller with any of the roles.
var (
	staff  = []string{"admin", "fieldops"}
	admins = []string{"admin"}
	anyone []string // enrollment: authorised by the one-time token in its body
)

// none is the request of an endpoint without a body.
type none struct{}

// rawBody is the answer of an endpoint that is not JSON (a bundle): written as it is.
type rawBody struct {
	Type string
	Data []byte
}

// holdSlack is what a holding endpoint gets past its longest hold: to look its answer up and
// write it.
const holdSlack = 10 * time.Second

// routeOption adjusts how route serves an endpoint.
type routeOption func(*routeOptions)

type routeOptions struct{ hold time.Duration }

// holding lets an endpoint hold its request up to d (a long poll): longer than the HTTP server's
// read and write timeouts, which bound what anyone can make the hub hold. route extends the
// connection's deadlines once the caller is authorized.
func holding(d time.Duration) routeOption { return func(o *routeOptions) { o.hold = d } }

// route serves pattern ("GET /sites", under api.Prefix) with h, the one way every endpoint runs:
// authenticate and authorize the caller (unless roles is anyone; h finds it with principal),
// pass the pattern's gate if it has one (admission before the body is read), decode the strict
// JSON body into Req (unless Req is none), call h, and encode its answer with status, or map its
// error to a status code (writeErr). An option (holding) lets h hold the request.
func route[Req, Resp any](a *API, pattern string, roles []string, status int, h func(r *http.Request, req Req) (Resp, error),
	opts ...routeOption) {
	var o routeOptions
	for _, f := range opts {
		f(&o)
	}
	method, path, _ := strings.Cut(pattern, " ")
	a.mux.HandleFunc(method+" "+api.Prefix+path, func(w http.ResponseWriter, r *http.Request) {
		var who *Principal // an authenticated caller: a staff action that is not a read is audited
		out, err := func() (out Resp, err error) {
			r, release, err := a.admit(w, r, pattern, roles)
			if p := principal(r); p.Subject != "" {
				who = &p // also when refused: a refused staff action is audited too
			}
			if err != nil {
				return out, err
			}
			defer release()
			if o.hold > 0 && roles != nil {
				// Past the server's read timeout its background read would cancel r's context.
				rc := http.NewResponseController(w)
				deadline := time.Now().Add(o.hold + holdSlack)
				_ = rc.SetReadDeadline(deadline) // not supported by every ResponseWriter (tests)
				_ = rc.SetWriteDeadline(deadline)
			}
			var req Req
			if _, bodiless := any(req).(none); !bodiless {
				if err := decode(w, r, &req); err != nil {
					return out, err
				}
			}
			return h(r, req)
		}()
		if who != nil && method != http.MethodGet {
			a.audit(r, *who, method+" "+path, status, err)
		}
		if who != nil && err != nil && a.apiError(err).Status == http.StatusForbidden {
			a.noteSecurity(r, *who, security.APIForbidden, "", method+" "+r.URL.Path)
		}
		switch {
		case err != nil && r.Context().Err() != nil:
			// The client went away (or the server is shutting down): nobody reads an answer.
			a.cfg.Log.Debug("api request cancelled", "method", r.Method, "path", r.URL.Path, "err", err)
		case err != nil:
			a.writeErr(w, err)
		default:
			if raw, ok := any(out).(rawBody); ok {
				w.Header().Set("Content-Type", raw.Type)
				w.WriteHeader(status)
				w.Write(raw.Data)
				return
			}
			writeJSON(w, status, out)
		}
	})
}

// admit runs what every endpoint runs before its body is read: authentication and
// authorization (the principal goes into the request's context, see principal), and the
// pattern's gate. release is never nil.
func (a *API) admit(w http.ResponseWriter, r *http.Request, pattern string, roles []string) (*http.Request, func(), error) {
	release := func() {}
	if roles != nil {
		p, err := a.authorize(w, r, roles)
		if p.Subject != "" {
			r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		}
		if err != nil {
			return r, release, err
		}
	}
	if gate := a.gates[pattern]; gate != nil {
		gr, rel, err := gate(w, r)
		if err != nil {
			return r, release, err
		}
		r, release = gr, rel
	}
	return r, release, nil
}

// routeRaw serves pattern as route does, for an endpoint that writes its own answer (a stream,
// a document): h writes its success itself; an error it returns before writing is answered as
// route answers errors.
func routeRaw(a *API, pattern string, roles []string, h func(w http.ResponseWriter, r *http.Request) error) {
	method, path, _ := strings.Cut(pattern, " ")
	a.mux.HandleFunc(method+" "+api.Prefix+path, func(w http.ResponseWriter, r *http.Request) {
		r, release, err := a.admit(w, r, pattern, roles)
		if err == nil {
			err = h(w, r)
		}
		release()
		if err != nil && r.Context().Err() == nil {
			a.writeErr(w, err)
		}
	})
}

func apiErr(status int, code, format string, a ...any) *api.Error {
	return &api.Error{Status: status, Code: code, Message: fmt.Sprintf(format, a...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeErr answers an error: an *api.Error as it is, the store's sentinels with their status
// codes, anything else as an internal error (logged, not shown).
func (a *API) writeErr(w http.ResponseWriter, err error) {
	ae := a.apiError(err)
	if ae.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(time.Second, ae.RetryAfter.Round(time.Second))/time.Second)))
	}
	writeJSON(w, ae.Status, api.ErrorBody{Error: *ae})
}

// apiError is the answer to an error (see writeErr).
func (a *API) apiError(err error) *api.Error {
	var ae *api.Error
	var iv *catalog.InvalidError
	switch {
	case errors.Is(err, context.Canceled):
		ae = apiErr(http.StatusServiceUnavailable, "canceled", "request canceled") // the client has gone
	case errors.As(err, &ae):
	case errors.Is(err, store.ErrNotFound):
		ae = apiErr(http.StatusNotFound, "not_found", "%v", err)
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrConflict):
		ae = apiErr(http.StatusConflict, "conflict", "%v", err)
	case errors.As(err, &iv):
		ae = &api.Error{Status: http.StatusBadRequest, Code: "bad_request", Message: iv.Error(), Fields: iv.Fields}
	case errors.Is(err, store.ErrInvalid):
		ae = apiErr(http.StatusBadRequest, "bad_request", "%v", err)
	case errors.Is(err, catalog.ErrForbidden):
		ae = apiErr(http.StatusForbidden, "forbidden", "%v", err)
	case errors.Is(err, catalog.ErrNotAllowed), errors.Is(err, store.ErrStale):
		ae = apiErr(http.StatusConflict, "conflict", "%v", err)
	default:
		a.cfg.Log.Error("api internal error", "err", err)
		ae = apiErr(http.StatusInternalServerError, "internal", "internal error")
	}
	return ae
}

// maxBody is the largest request body accepted.
const maxBody = 1 << 20

// decode reads a strict JSON body: one object of strict JSON (strictjson: valid UTF-8, no
// duplicate keys at any depth), unknown fields and trailing data refused, 1 MiB at most.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &mb):
		return apiErr(http.StatusBadRequest, "bad_request", "request body over %d bytes", mb.Limit)
	case err != nil:
		return apiErr(http.StatusBadRequest, "bad_request", "reading the body: %v", err)
	case len(bytes.TrimSpace(body)) == 0:
		return apiErr(http.StatusBadRequest, "bad_request", "invalid JSON body: empty")
	}
	if err := strictjson.Check(body); err != nil {
		return apiErr(http.StatusBadRequest, "bad_request", "invalid JSON body: %v", err)
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return apiErr(http.StatusBadRequest, "bad_request", "invalid JSON body: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// invalid collects field problems so a request is answered with all of them at once.
type invalid []string

func (iv *invalid) check(ok bool, field, format string, a ...any) {
	if !ok {
		*iv = append(*iv, field+": "+fmt.Sprintf(format, a...))
	}
}

func (iv invalid) err() error {
	if len(iv) == 0 {
		return nil
	}
	return &api.Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "invalid request: " + strings.Join(iv, "; "), Fields: iv}
}

func parseTTL(s string, def, maxTTL time.Duration, iv *invalid, field string) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	iv.check(err == nil && d >= time.Second && d <= maxTTL, field, "want a duration between 1s and %s, got %q", maxTTL, s)
	return d
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand never fails on Linux (Go 1.24+ panics rather than return an error)
	return hex.EncodeToString(b)
}

// convert converts a list of the store's records to the API's, never to nil: an empty list is
// shown as [].
func convert[S, T any](in []S, f func(S) T) []T {
	out := make([]T, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}
