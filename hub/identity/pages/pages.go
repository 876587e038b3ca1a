// Package pages holds the identity provider's server-rendered pages (login, phone code, consent,
// device approval, the citizen's account, logged out) as templates. They need no external asset:
// styles are inline, the one script (citizen.js) is served by the provider itself, and text
// comes in zh-CN (default) and English, in normal or large type.
package pages

import "embed"

// FS holds the templates (layout.html defines the frame every page uses) and citizen.js, the
// passkey ceremonies in the browser.
//
//go:embed *.html *.js
var FS embed.FS
