package httpapi

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/kioskfleet/kioskfleet/hub/catalog"
	"github.com/kioskfleet/kioskfleet/hub/store"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

// publicRoutes serves what the channels read without a token (docs/catalog.md, "Public reads"):
// the catalog listed on each channel and the guides published with it, from the catalog's
// in-memory snapshot, already encoded; and guide templates. They bypass route: nothing to
// authenticate or decode, and the answer is bytes made once per change of the catalog.
func (a *API) publicRoutes() {
	pre := api.PublicPrefix[len(api.Prefix):]
	a.public("GET "+pre+"/catalog/{channel}", func(s *catalog.Snapshot, r *http.Request) (*catalog.Page, error) {
		p, ok := s.Channel(r.PathValue("channel"))
		if !ok {
			return nil, apiErr(http.StatusNotFound, "not_found", "no channel %q (channels: %s)", r.PathValue("channel"), strings.Join(api.Channels, ", "))
		}
		return p, nil
	})
	guide := func(html bool, versioned bool) func(s *catalog.Snapshot, r *http.Request) (*catalog.Page, error) {
		return func(s *catalog.Snapshot, r *http.Request) (*catalog.Page, error) {
			var v int64
			if versioned {
				var err error
				if v, err = guideVersion(r.PathValue("version")); err != nil {
					return nil, err
				}
			}
			p, ok := s.Guide(r.PathValue("id"), v, html, pageLang(r))
			if !ok {
				return nil, apiErr(http.StatusNotFound, "not_found", "no published guide %s (a guide is public once an app listed on a channel was published with it)", r.PathValue("id"))
			}
			return p, nil
		}
	}
	a.public("GET "+pre+"/guides/{id}", guide(false, false))
	a.public("GET "+pre+"/guides/{id}/page", guide(true, false))
	a.public("GET "+pre+"/guides/{id}/versions/{version}", guide(false, true))
	a.public("GET "+pre+"/guides/{id}/versions/{version}/page", guide(true, true))
	a.mux.HandleFunc("GET "+api.PublicPrefix+"/templates/{file}", a.template)
}

// public serves pattern with a page of the published catalog, honouring If-None-Match.
func (a *API) public(pattern string, page func(*catalog.Snapshot, *http.Request) (*catalog.Page, error)) {
	method, path, _ := strings.Cut(pattern, " ")
	a.mux.HandleFunc(method+" "+api.Prefix+path, func(w http.ResponseWriter, r *http.Request) {
		s, err := a.cfg.Catalog.Published(r.Context())
		if err != nil {
			a.writeErr(w, err)
			return
		}
		p, err := page(s, r)
		if err != nil {
			a.writeErr(w, err)
			return
		}
		servePage(w, r, p, "public, max-age=5")
	})
}

func servePage(w http.ResponseWriter, r *http.Request, p *catalog.Page, cache string) {
	h := w.Header()
	h["Etag"] = []string{p.ETag}
	h["Cache-Control"] = []string{cache}
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, p.ETag) {
		w.WriteHeader(http.StatusNotModified) // RFC 9110 §13.1.2
		return
	}
	h["Content-Type"] = []string{p.Type}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	if p.Gzip == nil {
		w.Write(p.Body)
		return
	}
	h["Vary"] = []string{"Accept-Encoding"}
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		h["Content-Encoding"] = []string{"gzip"}
		w.Write(p.Gzip)
		return
	}
	w.Write(p.Body)
}

// acceptsGzip reports whether an Accept-Encoding header takes gzip (RFC 9110 §12.5.3).
func acceptsGzip(h string) bool {
	for part := range strings.SplitSeq(h, ",") {
		coding, params, _ := strings.Cut(part, ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

// etagMatch reports whether an If-None-Match list names tag (weak comparison, RFC 9110 §8.8.3.2).
func etagMatch(list, tag string) bool {
	for t := range strings.SplitSeq(list, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == tag || t == "*" {
			return true
		}
	}
	return false
}

// pageLang is the language of a guide page: ?lang=en or zh-CN, else English when the browser
// prefers it, else zh-CN.
func pageLang(r *http.Request) string {
	if l := r.URL.Query().Get("lang"); slices.Contains([]string{catalog.LangEN, catalog.LangZH}, l) {
		return l
	}
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(r.Header.Get("Accept-Language"))), "en") {
		return catalog.LangEN
	}
	return catalog.LangZH
}

// template serves a guide's printable PDF form by its hash: /templates/SHA256.pdf. Content
// addressed, it never changes.
func (a *API) template(w http.ResponseWriter, r *http.Request) {
	sum, ok := strings.CutSuffix(r.PathValue("file"), ".pdf")
	if !ok || len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
		a.writeErr(w, apiErr(http.StatusNotFound, "not_found", "no template %q: want SHA256.pdf", r.PathValue("file")))
		return
	}
	b, err := a.cfg.Store.GetBlob(r.Context(), sum)
	if errors.Is(err, store.ErrNotFound) || (err == nil && b.Type != "application/pdf") {
		a.writeErr(w, apiErr(http.StatusNotFound, "not_found", "no template %s", sum))
		return
	}
	if err != nil {
		a.writeErr(w, err)
		return
	}
	servePage(w, r, &catalog.Page{Body: b.Data, ETag: `"` + sum + `"`, Type: "application/pdf"}, "public, max-age=31536000, immutable")
}
