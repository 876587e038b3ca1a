// Package pages holds the identity provider's server-rendered pages (login, consent, device
// approval, logged out) as templates. They need no external asset: styles are inline, and text
// comes in zh-CN (default) and English.
package pages

import "embed"

// FS holds the templates; layout.html defines the frame every page uses.
//
//go:embed *.html
var FS embed.FS
