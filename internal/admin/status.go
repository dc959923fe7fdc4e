package admin

import (
	"context"
	"errors"
	"net/http"

	"github.com/baldurfleet/baldur/internal/opsclient"
)

// statusOf maps an operator-client error to the HTTP status the API answers
// it with.
func statusOf(err error) int {
	var api *opsclient.APIError
	switch {
	case errors.Is(err, opsclient.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, opsclient.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, opsclient.ErrRefused), errors.Is(err, opsclient.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, opsclient.ErrNotApplied), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, opsclient.ErrNoReplayWorker), errors.Is(err, opsclient.ErrUnreachable),
		errors.Is(err, opsclient.ErrNoDatabase), errors.Is(err, opsclient.ErrNoAuditKey):
		return http.StatusServiceUnavailable
	case errors.As(err, &api) && api.Code >= 400 && api.Code < 600:
		return api.Code
	case errors.Is(err, opsclient.ErrAuditBroken):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}
