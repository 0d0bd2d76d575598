package server

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/causerie/causerie/app"
	"github.com/causerie/causerie/middleware"
)

// statusOf maps an error code to its HTTP status. Codes not listed are client errors (400).
var statusOf = map[string]int{
	app.CodeInvalid:          http.StatusBadRequest,
	app.CodeUnauthorized:     http.StatusUnauthorized,
	app.CodeForbidden:        http.StatusForbidden,
	app.CodeNotFound:         http.StatusNotFound,
	app.CodeMethodNotAllowed: http.StatusMethodNotAllowed,
	app.CodeConflict:         http.StatusConflict,
	app.CodeTooLarge:         http.StatusRequestEntityTooLarge,
	app.CodeInternal:         http.StatusInternalServerError,
}

// codeOf is the reverse, for the errors Echo and its middleware raise themselves.
var codeOf = map[int]string{
	http.StatusBadRequest:            app.CodeInvalid,
	http.StatusUnauthorized:          app.CodeUnauthorized,
	http.StatusForbidden:             app.CodeForbidden,
	http.StatusNotFound:              app.CodeNotFound,
	http.StatusMethodNotAllowed:      app.CodeMethodNotAllowed,
	http.StatusConflict:              app.CodeConflict,
	http.StatusRequestEntityTooLarge: app.CodeTooLarge,
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
		status, ok := statusOf[ae.Code]
		if !ok {
			status = http.StatusBadRequest
		}
		if status == http.StatusInternalServerError {
			return status, genericInternal
		}
		return status, errorBody{errorDetail{ae.Code, ae.Message}}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code, ok := codeOf[he.Code]
		if !ok || he.Code >= 500 {
			return http.StatusInternalServerError, genericInternal
		}
		msg, _ := he.Message.(string)
		if msg == "" {
			msg = http.StatusText(he.Code)
		}
		return he.Code, errorBody{errorDetail{code, lowerFirst(msg)}}
	}
	return http.StatusInternalServerError, genericInternal
}

var genericInternal = errorBody{errorDetail{app.CodeInternal, "internal server error"}}

func lowerFirst(s string) string {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return s
	}
	return string(s[0]+'a'-'A') + s[1:]
}
