package server

import (
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"

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

	app.CodeRateLimited:          http.StatusTooManyRequests,
	app.CodeTooManyConns:         http.StatusTooManyRequests,
	app.CodeNameTaken:            http.StatusConflict,
	app.CodeUnsupportedMediaType: http.StatusUnsupportedMediaType,
}

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
