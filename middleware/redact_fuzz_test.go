package middleware_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/causerie/causerie/middleware"
)

const redacted = "REDACTED"

// FuzzRedactURI feeds RedactURI any string. It must not panic, must leave a URI without a query alone,
// must be idempotent, and the URI it returns, read as a server reads a request line, has no token
// parameter but redacted ones.
func FuzzRedactURI(f *testing.F) {
	for _, s := range []string{
		"/ws?token=abc.def",
		"/?rooms=a&token=abc&since=1",
		"/ws?TOKEN=abc",
		"/ws?%74oken=abc",
		"/ws?mytoken=abc",
		"/api/me",
		"/ws?token=abc#frag",
		"/api/me?x=1#&token=eyJhbGciOiJIUzI1NiJ9.e30.sig",
		"/ws?a=1;token=abc",
		"/ws?%zz=1&token",
		"http://example.com/ws?token=abc",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		out := middleware.RedactURI(uri)
		if !strings.Contains(uri, "?") && out != uri {
			t.Fatalf("RedactURI(%q) = %q, want it unchanged: it has no query", uri, out)
		}
		if again := middleware.RedactURI(out); again != out {
			t.Fatalf("RedactURI(%q) = %q, and RedactURI of that = %q", uri, out, again)
		}
		// A request line has no fragment: the server reads everything after the '?' as the query.
		u, err := url.ParseRequestURI(out)
		if err != nil {
			return
		}
		for name, values := range u.Query() {
			if !strings.EqualFold(name, "token") {
				continue
			}
			for _, v := range values {
				// "token=x#y" is redacted up to the '#', which may start a fragment; what follows is
				// redacted on its own when it is a token parameter.
				if v != redacted && !strings.HasPrefix(v, redacted+"#") {
					t.Fatalf("RedactURI(%q) = %q, whose query has %s=%q", uri, out, name, v)
				}
			}
		}
	})
}

// FuzzRedactURISecret builds URIs that carry a token parameter, path?prefix name=secret suffix, with a
// name that decodes to "token" in any case and a prefix that is empty or ends where a parameter starts
// ('&' for the server, ';' for proxies that split there too, '#' for clients that read the fragment). The
// secret must not be in the result. The secret is at least 8 bytes of what a JWT is made of and is found
// nowhere else in the URI, so it cannot be in the result by accident.
func FuzzRedactURISecret(f *testing.F) {
	f.Add("/ws", "", "token", "eyJhbGciOiJIUzI1NiJ9.e30.sig", "")
	f.Add("/", "rooms=a&", "TOKEN", "abcdefgh", "&since=1")
	f.Add("/ws", "x=1&", "%74oken", "abcdefgh", "#frag")
	f.Add("/api/me", "x=1#&", "token", "eyJhbGciOiJIUzI1NiJ9.e30.sig", "")
	f.Add("/ws", "a=1;", "Token", "abcdefgh", ";b=2")
	f.Add("/ws", "#", "token", "abcdefgh", "")
	f.Fuzz(func(t *testing.T, path, prefix, name, secret, suffix string) {
		if prefix == "" && strings.Contains(path, "?") {
			return // the query starts in the path: the name does not start a parameter
		}
		if prefix != "" && !strings.ContainsAny(prefix[len(prefix)-1:], "&;#") {
			return
		}
		if decoded, err := url.QueryUnescape(name); err != nil || !strings.EqualFold(decoded, "token") {
			return
		}
		const jwtBytes = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
		if len(secret) < 8 || secret == redacted || strings.Trim(secret, jwtBytes) != "" {
			return
		}
		uri := path + "?" + prefix + name + "=" + secret + suffix
		if strings.Count(uri, secret) != 1 {
			return
		}
		if out := middleware.RedactURI(uri); strings.Contains(out, secret) {
			t.Fatalf("RedactURI(%q) = %q, which has the token", uri, out)
		}
	})
}
