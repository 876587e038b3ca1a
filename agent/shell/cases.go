package shell

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// CaseReader is an optional capability of a Hub: the citizen's cases (hub/cases, docs/api.md
// "Cases"), read with the access token of her session at this kiosk. With it the shell shows her
// real case progress, streams its changes while she is logged in, and offers her certificates to
// print; without it, sample progress marked as such.
type CaseReader interface {
	MyCases(ctx context.Context, token string) ([]api.Case, error)
	MyCase(ctx context.Context, token, caseID string) (api.Case, error)
	CaseDocument(ctx context.Context, token, caseID, docID string) ([]byte, error)
	// WatchCases calls fn with each of her case events after the one numbered after, as they
	// happen, until ctx ends or the stream breaks (an error), or fn fails.
	WatchCases(ctx context.Context, token string, after int64, fn func(api.CaseEvent) error) error
}

var _ CaseReader = (*HubClient)(nil)

// citizen returns the hub API client acting with a citizen's access token.
func (h *HubClient) citizen(token string) *api.Client {
	return &api.Client{BaseURL: h.API.BaseURL, Token: token, HTTP: h.http()}
}

// MyCases implements CaseReader.
func (h *HubClient) MyCases(ctx context.Context, token string) ([]api.Case, error) {
	var out api.Cases
	err := h.citizen(token).Do(ctx, http.MethodGet, api.Prefix+"/me/cases", nil, &out)
	return out.Cases, err
}

// MyCase implements CaseReader.
func (h *HubClient) MyCase(ctx context.Context, token, caseID string) (api.Case, error) {
	var out api.Case
	err := h.citizen(token).Do(ctx, http.MethodGet, api.Prefix+"/me/cases/"+url.PathEscape(caseID), nil, &out)
	return out, err
}

// get sends a GET with the citizen's token and returns the answer, a 2xx one only.
func (h *HubClient) get(ctx context.Context, hc *http.Client, token, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(h.API.BaseURL, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode/100 != 2 {
		res.Body.Close()
		return nil, fmt.Errorf("shell: GET %s: HTTP %d", path, res.StatusCode)
	}
	return res, nil
}

// CaseDocument implements CaseReader: the document's bytes (a certificate is a PDF).
func (h *HubClient) CaseDocument(ctx context.Context, token, caseID, docID string) ([]byte, error) {
	res, err := h.get(ctx, h.http(), token, api.Prefix+"/me/cases/"+url.PathEscape(caseID)+"/documents/"+url.PathEscape(docID))
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	return io.ReadAll(io.LimitReader(res.Body, 8<<20))
}

// WatchCases implements CaseReader over the hub's server-sent event stream (HTML §9.2).
func (h *HubClient) WatchCases(ctx context.Context, token string, after int64, fn func(api.CaseEvent) error) error {
	hc := *h.http()
	hc.Timeout = 0 // a stream: ctx ends it
	res, err := h.get(ctx, &hc, token, api.Prefix+"/me/case-events?after="+strconv.FormatInt(after, 10))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	return readCaseEvents(res.Body, fn)
}

// readCaseEvents reads a case stream (text/event-stream, HTML §9.2: each event's data is one
// api.CaseEvent) and calls fn with each event, until the stream or fn fails; a stream that ends
// is an error too (the hub's never does by itself).
func readCaseEvents(r io.Reader, fn func(api.CaseEvent) error) error {
	sc := bufio.NewScanner(r)
	var data string
	for sc.Scan() {
		line := sc.Text()
		if d, ok := strings.CutPrefix(line, "data:"); ok {
			data += strings.TrimPrefix(d, " ")
			continue
		}
		if line != "" || data == "" {
			continue // id, event, retry, comments: the data says it all
		}
		var ev api.CaseEvent
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return fmt.Errorf("shell: case stream: %w", err)
		}
		data = ""
		if err := fn(ev); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("shell: case stream ended")
}

// caseReader returns the hub's cases and the token of cur's citizen, or nil when there are none
// to read (no hub capability, a guest).
func (s *Shell) caseReader(cur *session) (CaseReader, string) {
	cr, ok := s.cfg.Hub.(CaseReader)
	token := s.citizenToken(cur)
	if !ok || token == "" {
		return nil, ""
	}
	return cr, token
}

// citizenToken returns the hub access token of cur's citizen, "" for a guest.
func (s *Shell) citizenToken(cur *session) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur.acr == ACRGuest || len(cur.tokens) == 0 {
		return ""
	}
	return cur.tokens[len(cur.tokens)-1]
}

// caseSteps are the steps of a case's progress as the shell shows them.
var caseSteps = []struct{ status, name, en string }{
	{api.CaseSubmitted, "已提交", "Submitted"},
	{api.CaseAccepted, "已受理", "Accepted"},
	{api.CaseInReview, "审核中", "In review"},
	{api.CaseMaterialsNeeded, "需补充材料", "Materials needed"},
	{api.CaseApproved, "已批准", "Approved"},
	{api.CaseCertificateReady, "证照可领取", "Certificate ready"},
	{api.CaseClosed, "已办结", "Closed"},
}

// caseView is a case as the shell's page shows it: its steps done up to its status (materials
// needed shown only while they are).
func caseView(c api.Case) map[string]any {
	at := slices.IndexFunc(caseSteps, func(s struct{ status, name, en string }) bool { return s.status == c.Status })
	var steps []map[string]any
	for i, s := range caseSteps {
		if s.status == api.CaseMaterialsNeeded && c.Status != s.status {
			continue
		}
		steps = append(steps, map[string]any{"name": s.name, "nameEn": s.en, "done": i <= at})
	}
	return map[string]any{"id": c.ID, "title": c.Title, "titleEn": c.Title, "status": c.Status, "department": c.Department,
		"steps": steps}
}

// realCases answers GET cases from the hub, or ok false when the shell has no hub cases to show.
func (s *Shell) realCases(ctx context.Context, cur *session) (any, bool, error) {
	cr, token := s.caseReader(cur)
	if cr == nil {
		return nil, false, nil
	}
	cs, err := cr.MyCases(ctx, token)
	if err != nil {
		return nil, true, fail(http.StatusServiceUnavailable, "cases unavailable: %v", err)
	}
	// The page follows the events after the last one its cases show (timelines are in each case).
	views, last := []map[string]any{}, int64(0)
	for _, c := range cs {
		full, err := cr.MyCase(ctx, token, c.ID)
		if err != nil {
			return nil, true, fail(http.StatusServiceUnavailable, "cases unavailable: %v", err)
		}
		for _, ev := range full.Timeline {
			last = max(last, ev.Seq)
		}
		views = append(views, caseView(full))
	}
	return map[string]any{"demo": false, "cases": views, "after": last}, true, nil
}

// apiCaseEvents relays the citizen's case events from the hub to the shell's page as server-sent
// events while her session lasts: the page shows each change as the department makes it.
func (s *Shell) apiCaseEvents(w http.ResponseWriter, r *http.Request) (any, error) {
	cur, err := s.sessionOf(r)
	if err != nil {
		return nil, err
	}
	cr, token := s.caseReader(cur)
	if cr == nil {
		return nil, fail(http.StatusNotFound, "no case progress for this session")
	}
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() { // ends with the handler, or ends it with the session
		select {
		case <-cur.ended:
			cancel()
		case <-ctx.Done():
		}
	}()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	err = cr.WatchCases(ctx, token, after, func(ev api.CaseEvent) error {
		b, _ := json.Marshal(ev)
		if _, err := fmt.Fprintf(w, "id: %d\nevent: case\ndata: %s\n\n", ev.Seq, b); err != nil {
			return err
		}
		return rc.Flush()
	})
	if err != nil && ctx.Err() == nil {
		s.log.Info("shell: case stream ended", "err", err) // the page reconnects
	}
	return nil, nil
}

// certificates lists the PDF certificates of the citizen's cases as materials to print, and
// remembers for the session which case and document each stands for.
func (s *Shell) certificates(ctx context.Context, cur *session) ([]Material, error) {
	cr, token := s.caseReader(cur)
	if cr == nil {
		return nil, nil
	}
	cs, err := cr.MyCases(ctx, token)
	if err != nil {
		return nil, err
	}
	var out []Material
	docs := map[string][2]string{}
	for _, c := range cs {
		if c.Status != api.CaseCertificateReady && c.Status != api.CaseClosed {
			continue
		}
		full, err := cr.MyCase(ctx, token, c.ID)
		if err != nil {
			return nil, err
		}
		for _, d := range full.Documents {
			if d.Kind != "certificate" || d.ContentType != "application/pdf" {
				continue
			}
			sum := sha256.Sum256([]byte(c.ID + "/" + d.ID))
			id := "cert-" + hex.EncodeToString(sum[:8])
			docs[id] = [2]string{c.ID, d.ID}
			out = append(out, Material{ID: id, Title: d.Name + "（" + c.Title + "）", TitleEn: d.Name + " (" + c.Title + ")",
				Bytes: int(d.Size), Kind: "case"}) // pages: unknown until printed
		}
	}
	s.mu.Lock()
	if s.cur == cur {
		cur.caseDocs = docs
	}
	s.mu.Unlock()
	return out, nil
}

// certificate fetches a certificate listed by certificates, ok false for another material.
func (s *Shell) certificate(ctx context.Context, cur *session, id string) ([]byte, bool, error) {
	s.mu.Lock()
	ref, ok := cur.caseDocs[id]
	s.mu.Unlock()
	if !ok {
		return nil, false, nil
	}
	cr, token := s.caseReader(cur)
	if cr == nil {
		return nil, true, errors.New("the session has ended")
	}
	b, err := cr.CaseDocument(ctx, token, ref[0], ref[1])
	return b, true, err
}

// Recommender is an optional capability of a Hub: the services the hub recommends to the
// citizen (服务找人, hub/outreach), read with the token of her session at this kiosk; none when
// she opted out, on any channel.
type Recommender interface {
	MyRecommendations(ctx context.Context, token string) (api.Recommendations, error)
	// OptOutRecommendations records that the citizen wants no more recommendations, on any
	// channel.
	OptOutRecommendations(ctx context.Context, token string) error
}

var _ Recommender = (*HubClient)(nil)

// MyRecommendations implements Recommender.
func (h *HubClient) MyRecommendations(ctx context.Context, token string) (api.Recommendations, error) {
	var out api.Recommendations
	err := h.citizen(token).Do(ctx, http.MethodGet, api.Prefix+"/me/recommendations", nil, &out)
	return out, err
}

// OptOutRecommendations implements Recommender.
func (h *HubClient) OptOutRecommendations(ctx context.Context, token string) error {
	return h.citizen(token).Do(ctx, http.MethodPut, api.Prefix+"/me/recommendations/opt-out", api.OptOut{OptedOut: true}, nil)
}

// recommender returns the hub's recommendations and the token of the request's citizen; no
// Recommender for a guest or without the hub's capability.
func (s *Shell) recommender(r *http.Request) (Recommender, string, error) {
	cur, err := s.sessionOf(r)
	if err != nil {
		return nil, "", err
	}
	rec, ok := s.cfg.Hub.(Recommender)
	token := s.citizenToken(cur)
	if !ok || token == "" {
		return nil, "", nil
	}
	return rec, token, nil
}

// apiRecommendations answers the home screen's "for you" list: the hub's recommendations for
// the citizen logged in, none for a guest or without the hub's capability.
func (s *Shell) apiRecommendations(w http.ResponseWriter, r *http.Request) (any, error) {
	rec, token, err := s.recommender(r)
	if err != nil || rec == nil {
		return api.Recommendations{Recommendations: []api.Recommendation{}}, err
	}
	out, err := rec.MyRecommendations(r.Context(), token)
	if err != nil {
		return nil, fail(http.StatusServiceUnavailable, "recommendations unavailable: %v", err)
	}
	if out.Recommendations == nil {
		out.Recommendations = []api.Recommendation{}
	}
	return out, nil
}

// apiOptOut records, at the hub, that the citizen logged in wants no more recommendations (on
// every channel: the hub honours it everywhere), and answers her now empty list.
func (s *Shell) apiOptOut(w http.ResponseWriter, r *http.Request) (any, error) {
	rec, token, err := s.recommender(r)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fail(http.StatusNotFound, "no recommendations for this session")
	}
	if err := rec.OptOutRecommendations(r.Context(), token); err != nil {
		return nil, fail(http.StatusServiceUnavailable, "opt-out not recorded: %v", err)
	}
	return api.Recommendations{OptedOut: true, Recommendations: []api.Recommendation{}}, nil
}
