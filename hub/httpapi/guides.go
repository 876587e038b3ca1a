package httpapi

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/kioskfleet/kioskfleet/hub/catalog"
	"github.com/kioskfleet/kioskfleet/pkg/api"
)

func (a *API) guideRoutes() {
	route(a, "GET /guides", catalogStaff, http.StatusOK, a.listGuides)
	route(a, "POST /guides", catalogStaff, http.StatusCreated, a.createGuide)
	route(a, "GET /guides/{id}", catalogStaff, http.StatusOK, a.getGuide)
	route(a, "POST /guides/{id}/versions", catalogStaff, http.StatusCreated, a.addGuideVersion)
	route(a, "GET /guides/{id}/versions/{version}", catalogStaff, http.StatusOK, a.getGuideVersion)
	route(a, "POST /templates", catalogStaff, http.StatusCreated, a.uploadTemplate)
}

func (a *API) listGuides(r *http.Request, _ none) (api.Guides, error) {
	gs, err := a.cfg.Catalog.Guides(r.Context(), actor(r), r.URL.Query().Get("department"))
	return api.Guides{Guides: gs}, err
}

func (a *API) createGuide(r *http.Request, req api.CreateGuide) (api.Guide, error) {
	return a.cfg.Catalog.CreateGuide(r.Context(), actor(r), req)
}

func (a *API) getGuide(r *http.Request, _ none) (api.Guide, error) {
	return a.cfg.Catalog.Guide(r.Context(), actor(r), r.PathValue("id"))
}

func (a *API) addGuideVersion(r *http.Request, doc api.GuideDoc) (api.GuideVersion, error) {
	return a.cfg.Catalog.AddGuideVersion(r.Context(), actor(r), r.PathValue("id"), doc)
}

func (a *API) getGuideVersion(r *http.Request, _ none) (api.GuideVersion, error) {
	v, err := guideVersion(r.PathValue("version"))
	if err != nil {
		return api.GuideVersion{}, err
	}
	return a.cfg.Catalog.GuideVersion(r.Context(), actor(r), r.PathValue("id"), v)
}

func guideVersion(s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 1 {
		return 0, apiErr(http.StatusBadRequest, "bad_request", "guide version: want a positive integer, got %q", s)
	}
	return v, nil
}

// uploadTemplate takes a PDF form as the request body (Content-Type application/pdf).
func (a *API) uploadTemplate(r *http.Request, _ none) (api.TemplateInfo, error) {
	body, err := readRaw(r, "application/pdf", catalog.MaxTemplateBytes)
	if err != nil {
		return api.TemplateInfo{}, err
	}
	return a.cfg.Catalog.UploadTemplate(r.Context(), actor(r), body)
}

// readRaw reads a request body that is not JSON, of the given media type and at most limit bytes.
func readRaw(r *http.Request, mediaType string, limit int64) ([]byte, error) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != mediaType {
		return nil, apiErr(http.StatusUnsupportedMediaType, "bad_request", "Content-Type: want %s, got %q", mediaType, r.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, apiErr(http.StatusRequestEntityTooLarge, "bad_request", "request body over %d bytes", limit)
	}
	return body, nil
}
