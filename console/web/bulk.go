package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// bulkHub is a Hub that runs bulk actions (api.Client): the console then has a bulk page.
type bulkHub interface {
	Bulk(ctx context.Context, req api.BulkRequest) (api.BulkJob, error)
	BulkJob(ctx context.Context, id string) (api.BulkJob, error)
	BulkJobs(ctx context.Context) ([]api.BulkJob, error)
	BulkItems(ctx context.Context, id string) ([]api.BulkItem, error)
}

var _ bulkHub = (*api.Client)(nil)

// bulkForm is the bulk page's form: which kiosks, what to do.
type bulkForm struct {
	api.BulkFilter
	Action  string
	Command string // a command's name
	Args    string // its JSON arguments
	Patch   string // a desired-state merge patch
}

// request is the form as a request to the hub.
func (f bulkForm) request() api.BulkRequest {
	req := api.BulkRequest{Filter: f.BulkFilter, Action: f.Action}
	switch f.Action {
	case api.BulkCommand:
		req.Command = &api.CreateCommand{Name: f.Command}
		if f.Args != "" {
			req.Command.Args = json.RawMessage(f.Args)
		}
	case api.BulkDesired:
		req.Desired = json.RawMessage(f.Patch)
	}
	return req
}

func readBulkForm(v url.Values) bulkForm {
	get := func(k string) string { return strings.TrimSpace(v.Get(k)) }
	return bulkForm{BulkFilter: api.BulkFilter{Region: get("region"), Site: get("site"), Status: get("status"), Model: get("model"), Tag: get("tag")},
		Action: get("action"), Command: get("command"), Args: get("args"), Patch: get("patch")}
}

// values is the form as fields, for the confirmation form and links.
func (f bulkForm) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"region": f.Region, "site": f.Site, "status": f.Status, "model": f.Model, "tag": f.Tag,
		"action": f.Action, "command": f.Command, "args": f.Args, "patch": f.Patch} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// bulkData is the bulk page: the form, the count a dry run answered (with the confirmation's
// idempotency key), and the recent jobs.
type bulkData struct {
	Form    bulkForm
	Fields  url.Values
	Counted bool
	Dry     api.BulkJob
	Key     string
	Jobs    []api.BulkJob
}

// bulk serves GET /bulk: with ?count=1, the count of the kiosks the form selects (the hub's dry
// run) and a form to confirm it; the recent jobs below, live.
func (s *Server) bulk(w http.ResponseWriter, r *http.Request) {
	s.showBulk(w, r, readBulkForm(r.URL.Query()), nil, 0)
}

func (s *Server) showBulk(w http.ResponseWriter, r *http.Request, f bulkForm, shown *shownError, status int) {
	l := s.lang(w, r)
	p := &page{L: l, Title: l.T("bulk"), Nav: "bulk", Err: shown}
	bh, ok := s.hub(r).(bulkHub)
	if !ok {
		s.fail(w, r, http.StatusNotImplemented, l.T("no-bulk"), nil)
		return
	}
	if f.Action == "" {
		f.Action = api.BulkDesired
	}
	d := bulkData{Form: f, Fields: f.values()}
	ctx, cancel := s.ctx(r)
	defer cancel()
	q := r.URL.Query()
	// The count is asked for once, when the person asks; not at each live update.
	if r.Method == http.MethodGet && q.Get("count") == "1" && q.Get("live") != "1" {
		req := f.request()
		req.DryRun = true
		dry, err := bh.Bulk(ctx, req)
		if err != nil {
			p.Err, status = s.hubError(l, "bulk count", err)
		} else {
			d.Counted, d.Dry, d.Key = true, dry, newKey()
		}
	}
	jobs, err := bh.BulkJobs(ctx)
	if err != nil && p.Err == nil {
		p.Err, status = s.hubError(l, "bulk jobs", err)
	}
	d.Jobs = jobs
	p.Data = d
	if status == 0 {
		status = http.StatusOK
	}
	s.render(w, r, status, "bulk", p)
}

// newKey returns a new idempotency key: the confirmation form carries it, so that the form sent
// twice (a double tap, a retry after a lost answer) starts one job.
func newKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "console-" + hex.EncodeToString(b)
}

// startBulk serves POST /bulk: the confirmation of a count. The hub acts only if exactly the
// confirmed count of kiosks still match; the page then follows the job.
func (s *Server) startBulk(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	if !s.form(w, r, l) {
		return
	}
	f := readBulkForm(r.PostForm)
	bh, ok := s.hub(r).(bulkHub)
	if !ok {
		s.fail(w, r, http.StatusNotImplemented, l.T("no-bulk"), nil)
		return
	}
	expect, err := strconv.Atoi(r.PostFormValue("expect"))
	if err != nil || expect < 0 {
		s.showBulk(w, r, f, &shownError{Title: l.T("bulk-count-first")}, http.StatusBadRequest)
		return
	}
	req := f.request()
	req.Expect, req.IdempotencyKey = &expect, r.PostFormValue("key")
	ctx, cancel := s.ctx(r)
	defer cancel()
	j, err := bh.Bulk(ctx, req)
	if err != nil {
		e, status := s.hubError(l, "bulk", err)
		s.showBulk(w, r, f, e, status)
		return
	}
	s.cfg.Log.Info("bulk job started", "job", j.ID, "action", j.Action, "kiosks", j.Count, "replayed", j.Replayed)
	http.Redirect(w, r, "/bulk/"+url.PathEscape(j.ID), http.StatusSeeOther)
}

// bulkJobData is a job's page: its counts and each kiosk's progress.
type bulkJobData struct {
	Job   api.BulkJob
	Items []api.BulkItem
}

// Percent is the share of the job's kiosks in a state, for the progress bar.
func (d bulkJobData) Percent(n int) int {
	if d.Job.Count == 0 {
		return 0
	}
	return n * 100 / d.Job.Count
}

// bulkJob serves GET /bulk/{id}: the job's progress, live.
func (s *Server) bulkJob(w http.ResponseWriter, r *http.Request) {
	l := s.lang(w, r)
	p := &page{L: l, Title: l.T("bulk"), Nav: "bulk"}
	bh, ok := s.hub(r).(bulkHub)
	if !ok {
		s.fail(w, r, http.StatusNotImplemented, l.T("no-bulk"), nil)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	var d bulkJobData
	var err error
	if d.Job, err = bh.BulkJob(ctx, r.PathValue("id")); err == nil {
		d.Items, err = bh.BulkItems(ctx, d.Job.ID)
	}
	status := http.StatusOK
	if err != nil {
		p.Err, status = s.hubError(l, "bulk job", err)
	}
	p.Data = d
	s.render(w, r, status, "bulkjob", p)
}
