package server

import (
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/middleware"
)

// echoErrors gives the errors Echo and its middleware raise themselves our code and wording.
var echoErrors = map[int]errorDetail{
	http.StatusBadRequest:            {app.CodeInvalid, "bad request"},
	http.StatusUnauthorized:          {app.CodeUnauthorized, "unauthorized"},
	http.StatusForbidden:             {app.CodeForbidden, "forbidden"},
	http.StatusNotFound:              {app.CodeNotFound, "no such route"},
	http.StatusMethodNotAllowed:      {app.CodeMethodNotAllowed, "method not allowed on this route"},
	http.StatusRequestEntityTooLarge: {app.CodeTooLarge, "request body is over " + bodyLimit + "B"},
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// errorHandler writes every error as {"error":{"code","message"}}. Only internal errors are logged, with
// their detail; clients get a generic message for them.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		status, body := classify(err)
		var ae *app.Error
		if errors.As(err, &ae) && ae.RetryAfter > 0 {
			c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(ae.RetryAfter.Seconds()))))
		}
		if status == http.StatusInternalServerError {
			log.Error("internal error", "err", err, "method", c.Request().Method,
				"uri", middleware.RedactURI(c.Request().RequestURI),
				"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
		}
		if c.Request().Method == http.MethodHead {
			err = c.NoContent(status)
		} else {
			err = c.JSON(status, body)
		}
		if err != nil {
			log.Debug("write error response", "err", err)
		}
	}
}

func classify(err error) (int, errorBody) {
	var ae *app.Error
	if errors.As(err, &ae) {
		status := app.HTTPStatus(ae.Code)
		if status == http.StatusInternalServerError {
			return status, genericInternal
		}
		return status, errorBody{errorDetail{ae.Code, ae.Message}}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		if detail, ok := echoErrors[he.Code]; ok {
			return he.Code, errorBody{detail}
		}
		if he.Code < 500 {
			return http.StatusBadRequest, errorBody{echoErrors[http.StatusBadRequest]}
		}
	}
	return http.StatusInternalServerError, genericInternal
}

var genericInternal = errorBody{errorDetail{app.CodeInternal, "internal server error"}}

// plainJSON is Echo's JSON serializer without HTML escaping: answers are application/json with nosniff,
// never HTML, and "Bearer <token>" reads better than "Bearer \u003ctoken\u003e" in a terminal.
type plainJSON struct{ echo.DefaultJSONSerializer }

func (plainJSON) Serialize(c echo.Context, i any, indent string) error {
	enc := json.NewEncoder(c.Response())
	enc.SetEscapeHTML(false)
	if indent != "" {
		enc.SetIndent("", indent)
	}
	return enc.Encode(i)
}
