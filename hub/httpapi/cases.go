package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/kioskfleet/kioskfleet/hub/cases"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// CaseRoom is the case room as the API serves it (hub/cases).
type CaseRoom interface {
	Create(ctx context.Context, clientID string, n cases.NewCase) (store.Case, error)
	Get(ctx context.Context, clientID, id string) (store.Case, error)
	Mine(ctx context.Context, account, id string) (store.Case, error)
	List(ctx context.Context, account string) ([]store.Case, error)
	EventsAfter(ctx context.Context, account string, after int64) ([]store.CaseEvent, error)
	SetStatus(ctx context.Context, clientID, id, status, note string) (store.CaseEvent, error)
	AddDocument(ctx context.Context, clientID, id string, d cases.Document) (store.CaseEvent, error)
	Document(ctx context.Context, caseID, docID string) (store.CaseDocument, error)
	Notifier() cases.Notifier
}

// citizens is who may call the /me endpoints: a citizen's access token, from any channel.
var citizens = []string{roleCitizen}

// streamKeepAlive is how often an idle case stream sends a comment, and checks the store for
// changes notified elsewhere (another hub replica).
const streamKeepAlive = 15 * time.Second

func (a *API) caseRoutes() {
	if a.cfg.Cases == nil {
		return
	}
	// Department systems, by their client credentials.
	route(a, "POST /cases", anyone, http.StatusCreated, a.createCase)
	route(a, "GET /cases/{id}", anyone, http.StatusOK, a.getCase)
	route(a, "POST /cases/{id}/status", anyone, http.StatusOK, a.setCaseStatus)
	route(a, "POST /cases/{id}/documents", anyone, http.StatusCreated, a.addCaseDocument)
	routeRaw(a, "GET /cases/{id}/documents/{doc}", anyone, a.departmentDocument)
	// Citizens, on every channel (the kiosk shell with the session's token).
	route(a, "GET /me/cases", citizens, http.StatusOK, a.myCases)
	route(a, "GET /me/cases/{id}", citizens, http.StatusOK, a.myCase)
	routeRaw(a, "GET /me/cases/{id}/documents/{doc}", citizens, a.myDocument)
	routeRaw(a, "GET /me/case-events", citizens, a.caseStream)
}

// department authenticates a department's system: a confidential client by HTTP Basic.
func (a *API) department(r *http.Request) (string, error) {
	id, secret, ok := r.BasicAuth()
	if !ok || secret == "" || a.cfg.Clients == nil {
		return "", apiErr(http.StatusUnauthorized, "unauthorized", "a department system's client credentials (HTTP Basic) are required")
	}
	if _, err := a.cfg.Clients.AuthenticateClient(r.Context(), id, secret); err != nil {
		return "", apiErr(http.StatusUnauthorized, "unauthorized", "unknown client or wrong secret")
	}
	return id, nil
}

// caseErr maps the room's refusals.
func caseErr(err error) error {
	var fe *cases.FieldError
	switch {
	case errors.As(err, &fe):
		return &api.Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "invalid request", Fields: fe.Fields}
	case errors.Is(err, store.ErrBadTransition):
		return apiErr(http.StatusConflict, "conflict", "%v", err)
	}
	return err
}

func (a *API) createCase(r *http.Request, req api.CreateCase) (api.Case, error) {
	client, err := a.department(r)
	if err != nil {
		return api.Case{}, err
	}
	// The citizen's token says who she is and where she applied.
	cr := r.Clone(r.Context())
	cr.Header.Set("Authorization", "Bearer "+req.CitizenToken)
	p, err := a.authenticateFor(cr, AudienceCitizen)
	if err != nil || req.CitizenToken == "" || !p.Has(roleCitizen) {
		return api.Case{}, &api.Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "invalid request",
			Fields: []string{"citizenToken: not a live access token of a citizen for the citizens' API"}}
	}
	n := cases.NewCase{Ref: req.Ref, Service: req.Service, Department: req.Department, Title: req.Title, Account: p.Subject,
		Channel: req.Channel}
	if p.KioskID != "" {
		n.Channel = store.ChannelKiosk // a session opened at a kiosk; its site from the event room
	}
	if a.cfg.Events != nil {
		if p.KioskID != "" {
			if o, err := a.cfg.Events.KioskOrigin(r.Context(), p.KioskID, ""); err == nil {
				n.Channel, n.SiteID = o.Channel, o.SiteID
			}
		} else if ch, err := a.cfg.Events.Channel(p.ClientID, req.Channel); err == nil {
			n.Channel = ch
		}
	}
	if n.Channel == "" {
		return api.Case{}, &api.Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "invalid request",
			Fields: []string{"channel: the citizen's token does not tell; name it (web, mobile or miniprogram)"}}
	}
	c, err := a.cfg.Cases.Create(r.Context(), client, n)
	if err != nil {
		return api.Case{}, caseErr(err)
	}
	return apiCase(c), nil
}

func (a *API) getCase(r *http.Request, _ none) (api.Case, error) {
	client, err := a.department(r)
	if err != nil {
		return api.Case{}, err
	}
	c, err := a.cfg.Cases.Get(r.Context(), client, r.PathValue("id"))
	return apiCase(c), err
}

func (a *API) setCaseStatus(r *http.Request, req api.SetCaseStatus) (api.CaseEvent, error) {
	client, err := a.department(r)
	if err != nil {
		return api.CaseEvent{}, err
	}
	ev, err := a.cfg.Cases.SetStatus(r.Context(), client, r.PathValue("id"), req.Status, req.Note)
	return apiCaseEvent(ev), caseErr(err)
}

func (a *API) addCaseDocument(r *http.Request, req api.AddCaseDocument) (api.CaseEvent, error) {
	client, err := a.department(r)
	if err != nil {
		return api.CaseEvent{}, err
	}
	personal := req.Personal == nil || *req.Personal
	ev, err := a.cfg.Cases.AddDocument(r.Context(), client, r.PathValue("id"),
		cases.Document{Kind: req.Kind, Name: req.Name, ContentType: req.ContentType, Content: req.Content, Personal: personal})
	return apiCaseEvent(ev), caseErr(err)
}

func (a *API) departmentDocument(w http.ResponseWriter, r *http.Request) error {
	client, err := a.department(r)
	if err != nil {
		return err
	}
	if _, err := a.cfg.Cases.Get(r.Context(), client, r.PathValue("id")); err != nil {
		return err
	}
	return a.writeDocument(w, r)
}

func (a *API) myCases(r *http.Request, _ none) (api.Cases, error) {
	cs, err := a.cfg.Cases.List(r.Context(), principal(r).Subject)
	return api.Cases{Cases: convert(cs, apiCase)}, err
}

func (a *API) myCase(r *http.Request, _ none) (api.Case, error) {
	c, err := a.cfg.Cases.Mine(r.Context(), principal(r).Subject, r.PathValue("id"))
	return apiCase(c), err
}

// myDocument serves a citizen's document, a certificate as PDF for the kiosk to print.
func (a *API) myDocument(w http.ResponseWriter, r *http.Request) error {
	if _, err := a.cfg.Cases.Mine(r.Context(), principal(r).Subject, r.PathValue("id")); err != nil {
		return err
	}
	return a.writeDocument(w, r)
}

func (a *API) writeDocument(w http.ResponseWriter, r *http.Request) error {
	d, err := a.cfg.Cases.Document(r.Context(), r.PathValue("id"), r.PathValue("doc"))
	if err != nil {
		return err
	}
	defer clear(d.Content)
	h := w.Header()
	h.Set("Content-Type", d.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(d.Content)))
	h.Set("Cache-Control", "no-store") // personal data: no copy in a cache
	h.Set("Content-Disposition", fmt.Sprintf("inline; filename*=UTF-8''%s", url.PathEscape(d.Name)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.Write(d.Content) // an error now is the client's going away: nothing to answer
	return nil
}

// caseStream streams a citizen's case events as server-sent events (HTML Living Standard
// §9.2): first those after ?after= or the Last-Event-ID header, then each as it happens, every
// event's id its seq, so that a reconnecting client resumes where it stopped. It ends when the
// client goes away.
func (a *API) caseStream(w http.ResponseWriter, r *http.Request) error {
	account := principal(r).Subject
	after := int64(0)
	for _, s := range []string{r.Header.Get("Last-Event-ID"), r.URL.Query().Get("after")} {
		if s == "" {
			continue
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return apiErr(http.StatusBadRequest, "bad_request", "after: want a case event seq, got %q", s)
		}
		after = n
	}
	notified, stop := a.cfg.Cases.Notifier().Subscribe(account)
	defer stop()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil {
		return nil
	}
	tick := time.NewTicker(streamKeepAlive)
	defer tick.Stop()
	for {
		// The stream outlives the server's read and write timeouts: each round extends them past
		// the next keep-alive (past the read timeout the server's background read would cancel
		// r's context). Not every ResponseWriter supports deadlines (tests).
		deadline := time.Now().Add(streamKeepAlive + holdSlack)
		_ = rc.SetReadDeadline(deadline)
		_ = rc.SetWriteDeadline(deadline)
		evs, err := a.cfg.Cases.EventsAfter(r.Context(), account, after)
		if err != nil {
			if r.Context().Err() == nil {
				a.cfg.Log.Warn("case stream: store failed", "err", err)
			}
			return nil // the client reconnects with Last-Event-ID
		}
		for _, ev := range evs {
			b, _ := json.Marshal(apiCaseEvent(ev))
			if _, err := fmt.Fprintf(w, "id: %d\nevent: case\ndata: %s\n\n", ev.Seq, b); err != nil {
				return nil
			}
			after = ev.Seq
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
		if len(evs) == 100 {
			continue // more waiting
		}
		select {
		case <-r.Context().Done():
			return nil
		case <-notified:
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
		}
	}
}

func apiCase(c store.Case) api.Case {
	out := api.Case{ID: c.ID, Ref: c.Ref, Service: c.Service, Department: c.Department, Title: c.Title, Channel: c.Channel,
		SiteID: c.SiteID, Status: c.Status, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
	for _, e := range c.Timeline {
		out.Timeline = append(out.Timeline, apiCaseEvent(e))
	}
	for _, d := range c.Documents {
		out.Documents = append(out.Documents, api.CaseDocument{ID: d.ID, Kind: d.Kind, Name: d.Name, ContentType: d.ContentType,
			Size: d.Size, CreatedAt: d.CreatedAt})
	}
	return out
}

func apiCaseEvent(e store.CaseEvent) api.CaseEvent {
	return api.CaseEvent{Seq: e.Seq, CaseID: e.CaseID, Status: e.Status, Note: e.Note, DocumentID: e.DocumentID, At: e.At}
}
