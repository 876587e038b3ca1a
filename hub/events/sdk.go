package events

import (
	"embed"
	"net/http"
)

//go:embed sdk/kf-events.js
var sdk embed.FS

// SDKPath is where the hub serves the JavaScript SDK for web pages and mini-programs.
const SDKPath = "/sdk/kf-events.js"

// SDK serves the JavaScript SDK (sdk/kf-events.js): batching, retry with backoff, an offline
// queue, no dependencies.
func SDK() http.Handler {
	fs := http.FileServerFS(sdk)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/sdk/kf-events.js"
		fs.ServeHTTP(w, r2)
	})
}
