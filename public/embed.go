// Package public holds the browser page of Causerie: index.html, app.js and the modules it imports
// (api.js, view.js, token.js, socket.js, rooms.js: ES modules, no build step), and app.css (the Tailwind build of
// tailwind.css, committed so that `go build` needs no Node.js). The server serves Files at /.
package public

import "embed"

// Files holds the page. Rebuild app.css with `npm run build:css` in this folder after changing the
// classes used in index.html or view.js.
//
//go:embed index.html app.css app.js api.js view.js token.js socket.js rooms.js
var Files embed.FS
