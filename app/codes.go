package app

import "net/http"

// Error codes, in REST error bodies and WebSocket error frames alike.
const (
	CodeInvalid          = "invalid"
	CodeUnauthorized     = "unauthorized"
	CodeForbidden        = "forbidden"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeConflict         = "conflict"
	CodeTooLarge         = "too_large"
	CodeInternal         = "internal"
	// CodeUnavailable is a server on its way out (shutting down): try again, on another node or later.
	CodeUnavailable = "unavailable"
	// CodeNameTaken is a display name equal to another user's once both are normalized (see NameKey).
	CodeNameTaken = "name_taken"
	// CodeUnsupportedMediaType is a request body whose Content-Type the route does not take.
	CodeUnsupportedMediaType = "unsupported_media_type"
	// CodeTooManyConns refuses a WebSocket over MAX_CONNS_PER_USER or MAX_CONNS_PER_IP.
	CodeTooManyConns = "too_many_connections"
	CodeRateLimited  = "rate_limited"

	// Codes that only WebSocket error frames use.
	CodeBadJSON      = "bad_json"
	CodeUnknownType  = "unknown_type"
	CodeEmptyText    = "empty_text"
	CodeTooLong      = "too_long"
	CodeNotJoined    = "not_joined"
	CodeInvalidRoom  = "invalid_room"
	CodeTooMany      = "too_many_rooms"
	CodeExpired      = "token_expired"
	CodeSessionEnded = "session_ended"
)

// WebSocket close codes the server sends, beside those of RFC 6455's frame rules (app/wsframe).
const (
	CloseNormal    = 1000
	CloseGoingAway = 1001
	CloseInternal  = 1011
	// CloseServiceRestart tells a client of one node of several to reconnect at once: another node serves it.
	CloseServiceRestart = 1012
	// CloseUnauthorized ends a connection whose token expired, or whose session ended (a log out).
	CloseUnauthorized = 4001
	// CloseSlowClient ends a connection whose outbound queue filled up.
	CloseSlowClient = 4100
)

// meaning is what an error code does on each transport: the HTTP status of a REST answer, and the close
// code that follows its error frame when the connection cannot go on (0: it goes on).
type meaning struct {
	status int
	close  int
}

// meanings is every code's, in one place: a code missing here is a fault of ours (TestEveryCodeMeans).
var meanings = map[string]meaning{
	CodeInvalid:              {http.StatusBadRequest, 0},
	CodeUnauthorized:         {http.StatusUnauthorized, 0},
	CodeForbidden:            {http.StatusForbidden, 0},
	CodeNotFound:             {http.StatusNotFound, 0},
	CodeMethodNotAllowed:     {http.StatusMethodNotAllowed, 0},
	CodeConflict:             {http.StatusConflict, 0},
	CodeTooLarge:             {http.StatusRequestEntityTooLarge, 0},
	CodeInternal:             {http.StatusInternalServerError, 0},
	CodeUnavailable:          {http.StatusServiceUnavailable, 0},
	CodeNameTaken:            {http.StatusConflict, 0},
	CodeUnsupportedMediaType: {http.StatusUnsupportedMediaType, 0},
	CodeTooManyConns:         {http.StatusTooManyRequests, 0},
	CodeRateLimited:          {http.StatusTooManyRequests, 0},
	CodeBadJSON:              {http.StatusBadRequest, 0},
	CodeUnknownType:          {http.StatusBadRequest, 0},
	CodeEmptyText:            {http.StatusBadRequest, 0},
	CodeTooLong:              {http.StatusBadRequest, 0},
	CodeNotJoined:            {http.StatusBadRequest, 0},
	CodeInvalidRoom:          {http.StatusBadRequest, 0},
	CodeTooMany:              {http.StatusBadRequest, 0},
	CodeExpired:              {http.StatusUnauthorized, CloseUnauthorized},
	CodeSessionEnded:         {http.StatusUnauthorized, CloseUnauthorized},
}

// HTTPStatus returns the HTTP status of code; an unknown code is a fault of ours: 500.
func HTTPStatus(code string) int {
	if m, ok := meanings[code]; ok {
		return m.status
	}
	return http.StatusInternalServerError
}

// CloseCode returns the close code that follows an error frame of code, or 0 when the connection goes on.
func CloseCode(code string) int { return meanings[code].close }
