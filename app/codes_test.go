package app_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/causerie/causerie/app"
)

// Every error code constant has its HTTP status, so that none falls back to 500 by oversight; and the
// codes that end a WebSocket say with what.
func TestEveryCodeMeans(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "codes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	ast.Inspect(f, func(node ast.Node) bool {
		spec, ok := node.(*ast.ValueSpec)
		if !ok || !strings.HasPrefix(spec.Names[0].Name, "Code") {
			return true
		}
		code, _ := strconv.Unquote(spec.Values[0].(*ast.BasicLit).Value)
		if status := app.HTTPStatus(code); status == http.StatusInternalServerError && code != app.CodeInternal {
			t.Errorf("%s (%q) has no HTTP status", spec.Names[0].Name, code)
		}
		n++
		return true
	})
	if n < 20 {
		t.Fatalf("found %d codes in codes.go", n)
	}
	for code, want := range map[string]int{app.CodeExpired: app.CloseUnauthorized, app.CodeSessionEnded: app.CloseUnauthorized, app.CodeRateLimited: 0} {
		if got := app.CloseCode(code); got != want {
			t.Errorf("CloseCode(%s) = %d, want %d", code, got, want)
		}
	}
	if got := app.HTTPStatus("no-such-code"); got != http.StatusInternalServerError {
		t.Errorf("an unknown code is %d, want 500", got)
	}
}
