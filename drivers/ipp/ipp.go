// Package ipp drives A4 printers over IPP / IPP Everywhere (RFC 8011, PWG 5100.14) using the
// OpenPrinting/goipp codec: Get-Printer-Attributes (state, state reasons, formats, media ready),
// Print-Job with a PDF, Get-Job-Attributes until the job is completed, aborted or canceled, and
// Cancel-Job. Printer state reasons (media-empty, media-jam, toner-low...) are typed Reason values;
// a printer with a blocking reason refuses a job before anything is sent. TestPage renders a
// one-page PDF that any caller can print.
package ipp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/OpenPrinting/goipp"
)

var (
	// ErrNotReady: the printer cannot print now (see *NotReadyError for why).
	ErrNotReady = errors.New("ipp: printer not ready")
	// ErrJobFailed: a job ended aborted or canceled (see *JobError).
	ErrJobFailed = errors.New("ipp: job did not complete")
	// ErrFormat: the printer does not accept the document format.
	ErrFormat = errors.New("ipp: document format not supported")
	// ErrBadResponse: the printer's reply is not a valid IPP response.
	ErrBadResponse = errors.New("ipp: malformed response")
)

// StatusCode is a non-successful IPP status-code (RFC 8011 §4.1.6), returned as an error.
type StatusCode goipp.Status

func (c StatusCode) Error() string {
	return fmt.Sprintf("ipp: status %s (%#04x)", goipp.Status(c), uint16(c))
}

// MaxResponse bounds the size of a response we read.
const MaxResponse = 4 << 20

// Client talks to one IPP printer.
type Client struct {
	uri  string // printer-uri, ipp://host:port/path
	url  string // http URL the requests are posted to
	http *http.Client
	user string
	id   atomic.Uint32

	// PollInterval is how often WaitJob asks for the job's state; default 500 ms.
	PollInterval time.Duration
}

// New returns a client for printerURI (ipp://, ipps://, http:// or https://). hc may be nil for
// http.DefaultClient; callers should give it a timeout.
func New(printerURI string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(printerURI)
	if err != nil {
		return nil, fmt.Errorf("ipp: printer uri %q: %w", printerURI, err)
	}
	h := *u
	switch u.Scheme {
	case "ipp":
		h.Scheme = "http"
		if u.Port() == "" {
			h.Host = net.JoinHostPort(u.Hostname(), "631") // RFC 8010 §8.1.1: default port 631
		}
	case "ipps":
		h.Scheme = "https"
		if u.Port() == "" {
			h.Host = net.JoinHostPort(u.Hostname(), "443")
		}
	case "http", "https":
	default:
		return nil, fmt.Errorf("ipp: printer uri %q: scheme must be ipp, ipps, http or https", printerURI)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("ipp: printer uri %q has no host", printerURI)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{uri: printerURI, url: h.String(), http: hc, user: "kioskfleet", PollInterval: 500 * time.Millisecond}, nil
}

func (c *Client) request(op goipp.Op) *goipp.Message {
	m := goipp.NewRequest(goipp.DefaultVersion, op, c.id.Add(1))
	m.Operation.Add(goipp.MakeAttribute("attributes-charset", goipp.TagCharset, goipp.String("utf-8")))
	m.Operation.Add(goipp.MakeAttribute("attributes-natural-language", goipp.TagLanguage, goipp.String("en")))
	m.Operation.Add(goipp.MakeAttribute("printer-uri", goipp.TagURI, goipp.String(c.uri)))
	m.Operation.Add(goipp.MakeAttribute("requesting-user-name", goipp.TagName, goipp.String(c.user)))
	return m
}

// do sends req followed by doc and returns the decoded response, or a StatusCode error when the
// status is not successful.
func (c *Client) do(ctx context.Context, req *goipp.Message, doc []byte) (*goipp.Message, error) {
	op := goipp.Op(req.Code)
	b, err := req.EncodeBytes()
	if err != nil {
		return nil, fmt.Errorf("ipp: encode %s: %w", op, err)
	}
	body := io.MultiReader(bytes.NewReader(b), bytes.NewReader(doc))
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, body)
	if err != nil {
		return nil, fmt.Errorf("ipp: %s: %w", op, err)
	}
	hr.ContentLength = int64(len(b) + len(doc))
	hr.Header.Set("Content-Type", goipp.ContentType)
	resp, err := c.http.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("ipp: %s: %w", op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("ipp: %s: http status %s", op, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("ipp: %s: read response: %w", op, err)
	}
	m, err := DecodeResponse(data, req.RequestID)
	if err != nil {
		return nil, fmt.Errorf("ipp: %s: %w", op, err)
	}
	return m, nil
}

// DecodeResponse decodes an IPP response and checks its request-id (when want is not 0) and
// status-code; a non-successful status is returned as a StatusCode.
func DecodeResponse(data []byte, want uint32) (*goipp.Message, error) {
	if len(data) > MaxResponse {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadResponse, MaxResponse)
	}
	var m goipp.Message
	if err := m.DecodeBytes(data); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	if want != 0 && m.RequestID != want {
		return nil, fmt.Errorf("%w: request-id %d, want %d", ErrBadResponse, m.RequestID, want)
	}
	if st := goipp.Status(m.Code); st >= 0x0100 { // RFC 8011 §4.1.6: 0x0000-0x00FF are successful
		return &m, StatusCode(st)
	}
	return &m, nil
}

// Printer is what Get-Printer-Attributes tells about the printer.
type Printer struct {
	Name         string
	MakeAndModel string
	State        PrinterState
	Reasons      []StateReason
	StateMessage string
	Formats      []string // document-format-supported
	MediaReady   []string // media-ready
	Accepting    bool     // printer-is-accepting-jobs
}

// Blocking returns the reasons that stop printing. A warning never blocks; a condition such as
// media-empty blocks as an error and as a report (ippeveprinter reports "media-empty-report").
func (p *Printer) Blocking() []Reason {
	var out []Reason
	for _, r := range p.Reasons {
		if r.Severity != SeverityWarning && r.Reason.Blocking() {
			out = append(out, r.Reason)
		}
	}
	return out
}

// Has reports whether reason is among the printer's state reasons (any severity).
func (p *Printer) Has(reason Reason) bool {
	return slices.ContainsFunc(p.Reasons, func(r StateReason) bool { return r.Reason == reason })
}

// Ready returns nil if a job can be sent, else a *NotReadyError.
func (p *Printer) Ready() error {
	b := p.Blocking()
	if len(b) == 0 && p.State != PrinterStopped && p.Accepting {
		return nil
	}
	return &NotReadyError{State: p.State, Reasons: b, Accepting: p.Accepting}
}

// NotReadyError is a refusal because of the printer's state; errors.Is finds ErrNotReady and
// each blocking Reason.
type NotReadyError struct {
	State     PrinterState
	Reasons   []Reason
	Accepting bool
}

func (e *NotReadyError) Error() string {
	s := fmt.Sprintf("ipp: printer not ready: state %s", e.State)
	if len(e.Reasons) > 0 {
		s += ", reasons " + joinReasons(e.Reasons)
	}
	if !e.Accepting {
		s += ", not accepting jobs"
	}
	return s
}

func (e *NotReadyError) Unwrap() []error {
	errs := []error{ErrNotReady}
	for _, r := range e.Reasons {
		errs = append(errs, r)
	}
	return errs
}

func joinReasons(rs []Reason) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}

var printerAttrs = []string{"printer-name", "printer-make-and-model", "printer-state", "printer-state-reasons",
	"printer-state-message", "document-format-supported", "media-ready", "printer-is-accepting-jobs"}

// PrinterAttributes issues Get-Printer-Attributes (RFC 8011 §4.2.5).
func (c *Client) PrinterAttributes(ctx context.Context) (*Printer, error) {
	req := c.request(goipp.OpGetPrinterAttributes)
	req.Operation.Add(keywords("requested-attributes", printerAttrs))
	m, err := c.do(ctx, req, nil)
	if err != nil {
		return nil, err
	}
	return ParsePrinter(m)
}

func keywords(name string, kw []string) goipp.Attribute {
	a := goipp.Attribute{Name: name}
	for _, k := range kw {
		a.Values.Add(goipp.TagKeyword, goipp.String(k))
	}
	return a
}

// ParsePrinter extracts the printer description from a Get-Printer-Attributes response.
// printer-state is required; a value of the wrong type is an error.
func ParsePrinter(m *goipp.Message) (*Printer, error) {
	p := &Printer{Accepting: true}
	seenState := false
	for _, a := range m.Printer {
		var err error
		switch a.Name {
		case "printer-name":
			p.Name, err = oneString(a)
		case "printer-make-and-model":
			p.MakeAndModel, err = oneString(a)
		case "printer-state-message":
			p.StateMessage, err = oneString(a)
		case "printer-state":
			var n int
			n, err = oneInt(a)
			p.State, seenState = PrinterState(n), true
		case "printer-is-accepting-jobs":
			p.Accepting, err = oneBool(a)
		case "printer-state-reasons":
			var kws []string
			kws, err = strs(a)
			for _, k := range kws {
				if r, s := ParseReason(k); r != ReasonNone {
					p.Reasons = append(p.Reasons, StateReason{r, s})
				}
			}
		case "document-format-supported":
			p.Formats, err = strs(a)
		case "media-ready":
			p.MediaReady, err = strs(a)
		}
		if err != nil {
			return nil, err
		}
	}
	if !seenState {
		return nil, fmt.Errorf("%w: no printer-state", ErrBadResponse)
	}
	return p, nil
}

func strs(a goipp.Attribute) ([]string, error) {
	out := make([]string, 0, len(a.Values))
	for _, v := range a.Values {
		s, ok := v.V.(goipp.String)
		if !ok {
			return nil, fmt.Errorf("%w: %s has a %s value, want text", ErrBadResponse, a.Name, v.V.Type())
		}
		out = append(out, string(s))
	}
	return out, nil
}

func oneString(a goipp.Attribute) (string, error) {
	s, err := strs(a)
	if err != nil || len(s) != 1 {
		return "", fmt.Errorf("%w: %s wants one text value", ErrBadResponse, a.Name)
	}
	return s[0], nil
}

func oneInt(a goipp.Attribute) (int, error) {
	if len(a.Values) == 1 {
		if n, ok := a.Values[0].V.(goipp.Integer); ok {
			return int(n), nil
		}
	}
	return 0, fmt.Errorf("%w: %s wants one integer/enum value", ErrBadResponse, a.Name)
}

func oneBool(a goipp.Attribute) (bool, error) {
	if len(a.Values) == 1 {
		if b, ok := a.Values[0].V.(goipp.Boolean); ok {
			return bool(b), nil
		}
	}
	return false, fmt.Errorf("%w: %s wants one boolean value", ErrBadResponse, a.Name)
}

// JobOptions describe a job.
type JobOptions struct {
	Name   string // job-name
	Format string // document-format; default application/pdf
	// Progress, if set, is called by Print with each new state of the job while it is followed
	// (see FollowJob).
	Progress func(*Job)
}

// PrintJob issues Print-Job (RFC 8011 §4.2.1) with doc and returns the job-id. A printer that
// answers server-error-busy (one job at a time) is asked again every PollInterval until ctx is
// done. It does not check the printer's state; Print does.
func (c *Client) PrintJob(ctx context.Context, doc []byte, opt JobOptions) (int, error) {
	if opt.Format == "" {
		opt.Format = "application/pdf"
	}
	if opt.Name == "" {
		opt.Name = "kioskfleet"
	}
	var m *goipp.Message
	for {
		req := c.request(goipp.OpPrintJob)
		req.Operation.Add(goipp.MakeAttribute("job-name", goipp.TagName, goipp.String(opt.Name)))
		req.Operation.Add(goipp.MakeAttribute("document-format", goipp.TagMimeType, goipp.String(opt.Format)))
		var err error
		m, err = c.do(ctx, req, doc)
		if err == nil {
			break
		}
		if !errors.Is(err, StatusCode(goipp.StatusErrorBusy)) {
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-time.After(c.poll()):
		}
	}
	j, err := ParseJob(m)
	if err != nil {
		return 0, err
	}
	return j.ID, nil
}

// Job is what Get-Job-Attributes tells about a job.
type Job struct {
	ID      int
	State   JobState
	Reasons []string // job-state-reasons
	Message string   // job-state-message
	// Impressions is the job's size in impressions when the printer knows it, else 0;
	// ImpressionsCompleted how many are printed (RFC 8011 §5.3.17 job size, §5.3.18 job progress).
	Impressions, ImpressionsCompleted int
	// PrinterReasons are the printer's state reasons when the job ended unsuccessfully (filled
	// by WaitJob), or while it is followed with a progress function (FollowJob), e.g. media-empty.
	PrinterReasons []StateReason
}

// ParseJob extracts job-id, job-state and reasons from a Print-Job or Get-Job-Attributes response.
func ParseJob(m *goipp.Message) (*Job, error) {
	j := &Job{}
	seen := false
	for _, a := range m.Job {
		var err error
		switch a.Name {
		case "job-id":
			j.ID, err = oneInt(a)
			seen = true
		case "job-state":
			var n int
			n, err = oneInt(a)
			j.State = JobState(n)
		case "job-state-reasons":
			j.Reasons, err = strs(a)
		case "job-state-message":
			j.Message, err = oneString(a)
		case "job-impressions":
			j.Impressions, err = oneInt(a)
		case "job-impressions-completed":
			j.ImpressionsCompleted, err = oneInt(a)
		}
		if err != nil {
			return nil, err
		}
	}
	if !seen || j.ID <= 0 {
		return nil, fmt.Errorf("%w: no valid job-id", ErrBadResponse)
	}
	return j, nil
}

// JobAttributes issues Get-Job-Attributes (RFC 8011 §4.3.4).
func (c *Client) JobAttributes(ctx context.Context, id int) (*Job, error) {
	req := c.request(goipp.OpGetJobAttributes)
	req.Operation.Add(goipp.MakeAttribute("job-id", goipp.TagInteger, goipp.Integer(id)))
	req.Operation.Add(keywords("requested-attributes", []string{"job-id", "job-state", "job-state-reasons", "job-state-message",
		"job-impressions", "job-impressions-completed"}))
	m, err := c.do(ctx, req, nil)
	if err != nil {
		return nil, err
	}
	return ParseJob(m)
}

// CancelJob issues Cancel-Job (RFC 8011 §4.3.3).
func (c *Client) CancelJob(ctx context.Context, id int) error {
	req := c.request(goipp.OpCancelJob)
	req.Operation.Add(goipp.MakeAttribute("job-id", goipp.TagInteger, goipp.Integer(id)))
	_, err := c.do(ctx, req, nil)
	return err
}

func (c *Client) poll() time.Duration {
	if c.PollInterval <= 0 {
		return 500 * time.Millisecond
	}
	return c.PollInterval
}

// JobError is a job that ended aborted or canceled. errors.Is finds ErrJobFailed and each of the
// printer's reasons at the time (e.g. ReasonMediaEmpty).
type JobError struct{ Job *Job }

func (e *JobError) Error() string {
	s := fmt.Sprintf("ipp: job %d %s", e.Job.ID, e.Job.State)
	if len(e.Job.Reasons) > 0 {
		s += " (" + strings.Join(e.Job.Reasons, ",") + ")"
	}
	if len(e.Job.PrinterReasons) > 0 {
		rs := make([]string, len(e.Job.PrinterReasons))
		for i, r := range e.Job.PrinterReasons {
			rs[i] = r.String()
		}
		s += "; printer: " + strings.Join(rs, ",")
	}
	return s
}

func (e *JobError) Unwrap() []error {
	errs := []error{ErrJobFailed}
	for _, r := range e.Job.PrinterReasons {
		errs = append(errs, r.Reason)
	}
	return errs
}

// WaitJob follows job id until it is completed (returned with a nil error), aborted or canceled
// (returned with a *JobError, with the printer's reasons attached). If ctx ends first, the job is
// canceled on the printer and ctx's error returned. The returned Job is never nil: on other errors
// it carries the last state seen, so a caller never resubmits a job that may still print.
func (c *Client) WaitJob(ctx context.Context, id int) (*Job, error) { return c.FollowJob(ctx, id, nil) }

// FollowJob is WaitJob that also calls progress (when not nil) with the job whenever its state,
// impressions or the printer's state reasons changed since the last call; while following with
// progress the printer's reasons are asked for at every poll, so that a printer that stops
// mid-job (media-empty) shows at once.
func (c *Client) FollowJob(ctx context.Context, id int, progress func(*Job)) (*Job, error) {
	t := time.NewTicker(c.poll())
	defer t.Stop()
	last := &Job{ID: id}
	var told *Job
	for {
		j, err := c.JobAttributes(ctx, id)
		if err == nil {
			last = j
		}
		if err == nil && j.State.Terminal() {
			if j.State != JobCompleted {
				if p, perr := c.PrinterAttributes(ctx); perr == nil {
					j.PrinterReasons = p.Reasons
				}
			}
			if progress != nil {
				progress(j)
			}
			if j.State == JobCompleted {
				return j, nil
			}
			return j, &JobError{Job: j}
		}
		if err != nil && ctx.Err() == nil {
			return last, err
		}
		if err == nil && progress != nil {
			if p, perr := c.PrinterAttributes(ctx); perr == nil {
				j.PrinterReasons = p.Reasons
			}
			if told == nil || !sameProgress(told, j) {
				told = j
				progress(j)
			}
		}
		select {
		case <-ctx.Done():
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if cerr := c.CancelJob(cctx, id); cerr != nil {
				return last, fmt.Errorf("ipp: wait for job %d: %w (cancel failed: %v)", id, ctx.Err(), cerr)
			}
			return last, fmt.Errorf("ipp: wait for job %d (canceled it): %w", id, ctx.Err())
		case <-t.C:
		}
	}
}

func sameProgress(a, b *Job) bool {
	return a.State == b.State && a.Impressions == b.Impressions && a.ImpressionsCompleted == b.ImpressionsCompleted &&
		slices.Equal(a.Reasons, b.Reasons) && slices.Equal(a.PrinterReasons, b.PrinterReasons)
}

// Print checks that the printer is ready and accepts opt.Format, sends doc and follows the job to
// its end. A printer that is not ready refuses with a *NotReadyError before anything is sent.
func (c *Client) Print(ctx context.Context, doc []byte, opt JobOptions) (*Job, error) {
	if opt.Format == "" {
		opt.Format = "application/pdf"
	}
	p, err := c.PrinterAttributes(ctx)
	if err != nil {
		return nil, err
	}
	if err := p.Ready(); err != nil {
		return nil, err
	}
	if len(p.Formats) > 0 && !slices.Contains(p.Formats, opt.Format) {
		return nil, fmt.Errorf("%w: %s (printer accepts %s)", ErrFormat, opt.Format, strings.Join(p.Formats, ", "))
	}
	id, err := c.PrintJob(ctx, doc, opt)
	if err != nil {
		return nil, err
	}
	return c.FollowJob(ctx, id, opt.Progress)
}
