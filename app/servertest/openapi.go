package servertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/causerie/causerie/middleware"
)

// apiSpec is docs/openapi.yaml, loaded and checked once for every test of the process.
type apiSpec struct {
	doc    *openapi3.T
	router routers.Router
	opts   *openapi3filter.Options
}

// SpecPath is the path of docs/openapi.yaml, found from this file so that tests of any package load it.
func SpecPath() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return filepath.Join("docs", "openapi.yaml")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "docs", "openapi.yaml")
}

var loadSpec = sync.OnceValues(func() (*apiSpec, error) {
	// The page's files are text, like the metrics; the validator knows only text/plain of them.
	for _, mt := range []string{"text/html", "text/css", "text/javascript", "application/javascript"} {
		openapi3filter.RegisterBodyDecoder(mt, openapi3filter.PlainBodyDecoder)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(SpecPath())
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", SpecPath(), err)
	}
	if !doc.IsOpenAPI31OrLater() {
		return nil, fmt.Errorf("%s: openapi %q, want 3.1", SpecPath(), doc.OpenAPI)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("%s is not a valid OpenAPI document: %w", SpecPath(), err)
	}
	// The servers list names the default address; tests serve on a loopback port, so route on paths only.
	routed := *doc
	routed.Servers = nil
	router, err := gorillamux.NewRouter(&routed)
	if err != nil {
		return nil, fmt.Errorf("%s: router: %w", SpecPath(), err)
	}
	return &apiSpec{
		doc:    doc,
		router: router,
		opts: &openapi3filter.Options{
			// The server checks tokens itself; the spec only says which routes take one.
			AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
			IncludeResponseStatus: true, // a status the operation does not list is a failure
			MultiError:            true,
			SkipSettingDefaults:   true,
		},
	}, nil
})

// OpenAPI returns docs/openapi.yaml, loaded and validated, failing the test when it is not a valid
// OpenAPI 3.1 document.
func OpenAPI(t testing.TB) *openapi3.T {
	t.Helper()
	spec, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	return spec.doc
}

// ValidateResponse fails the test (without stopping it) unless the response to req is one that
// docs/openapi.yaml describes: its status is listed for the operation and its body matches the schema.
// Tests send invalid requests on purpose, so a request that does not match the spec is no failure in
// itself, but it must then have been refused with a 4xx. A request to a path or method the spec does not
// have must have been answered 404 not_found or 405 method_not_allowed, as the server does for those.
// Do calls it for every request; tests that make requests of their own (pages, WebSocket handshakes) can
// call it too. req's body, if any, must be readable again through req.GetBody.
func (s *Server) ValidateResponse(t testing.TB, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	spec, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.check(req, status, header, body); err != nil {
		const maxBody = 500
		shown := body
		if len(shown) > maxBody {
			shown = append(shown[:maxBody:maxBody], "..."...)
		}
		t.Errorf("%s %s: the %d response does not match docs/openapi.yaml: %v\nbody: %s",
			req.Method, middleware.RedactURI(req.URL.RequestURI()), status, err, shown)
	}
}

func (spec *apiSpec) check(req *http.Request, status int, header http.Header, body []byte) error {
	ctx := context.Background()
	vreq, err := validationRequest(ctx, req)
	if err != nil {
		return err
	}
	route, params, err := spec.router.FindRoute(vreq)
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		return spec.checkUnrouted(http.StatusNotFound, "NotFoundError", status, header, body)
	case errors.Is(err, routers.ErrMethodNotAllowed):
		return spec.checkUnrouted(http.StatusMethodNotAllowed, "MethodNotAllowedError", status, header, body)
	case err != nil:
		return fmt.Errorf("find the operation: %w", err)
	}

	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: spec.opts}
	if reqErr := openapi3filter.ValidateRequest(ctx, in); reqErr != nil && (status < 400 || status > 499) {
		return fmt.Errorf("the request does not match the spec (%v) but the server answered %d, not a 4xx: "+
			"the spec is stricter than the server", reqErr, status)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 header,
		Options:                spec.opts,
	}
	out.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(ctx, out)
}

// checkUnrouted checks the answer to a request the spec has no operation for: it must be want, with a
// JSON body matching the schema of that name.
func (spec *apiSpec) checkUnrouted(want int, schemaName string, status int, header http.Header, body []byte) error {
	if status != want {
		return fmt.Errorf("the spec has no operation for this request, so the answer should be %d, not %d: "+
			"a route the server serves is missing from the spec", want, status)
	}
	if mt, _, err := mime.ParseMediaType(header.Get("Content-Type")); err != nil || mt != "application/json" {
		return fmt.Errorf("Content-Type %q, want application/json", header.Get("Content-Type"))
	}
	schema := spec.doc.Components.Schemas[schemaName]
	if schema == nil || schema.Value == nil {
		return fmt.Errorf("components.schemas.%s is missing", schemaName)
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("body is not JSON: %w", err)
	}
	if err := schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.VisitAsResponse(), openapi3.MultiErrors()); err != nil {
		return fmt.Errorf("body does not match %s: %w", schemaName, err)
	}
	return nil
}

// validationRequest copies req with its body, already sent, read again. Routes but those of accounts
// read a body as JSON whatever its Content-Type, so a body sent without one is checked as
// application/json (on the account routes the server answers it 415, as the spec says).
func validationRequest(ctx context.Context, req *http.Request) (*http.Request, error) {
	v := req.Clone(ctx)
	v.Body = http.NoBody
	if req.GetBody != nil {
		b, err := req.GetBody()
		if err != nil {
			return nil, fmt.Errorf("read the request body again: %w", err)
		}
		data, err := io.ReadAll(b)
		if err != nil {
			return nil, fmt.Errorf("read the request body again: %w", err)
		}
		if len(data) > 0 {
			v.Body = io.NopCloser(bytes.NewReader(data))
			v.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
			if v.Header.Get("Content-Type") == "" {
				v.Header.Set("Content-Type", "application/json")
			}
		}
	}
	return v, nil
}
