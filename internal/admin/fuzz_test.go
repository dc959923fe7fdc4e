package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/admin"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

// snapshot returns the calls recorded so far.
func (f *fakeOperator) snapshot() []any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]any(nil), f.calls...)
}

// isWriteCall reports whether a recorded call changes the fleet.
func isWriteCall(c any) bool {
	switch c := c.(type) {
	case breakerCall, events.GovernanceCommand:
		return true
	case dlqCall:
		return c.Op != events.DLQOpList && c.Op != events.DLQOpGet && c.Op != events.DLQOpStats
	}
	return false
}

// fuzzRoute is a route of the admin API with the place the fuzzer's path
// argument goes ("{}").
type fuzzRoute struct {
	method, path string
	write        bool
}

// fuzzRoutes are the API's routes but the SSE stream (which does not end).
var fuzzRoutes = []fuzzRoute{
	{"GET", "/api/health", false},
	{"GET", "/api/breakers", false},
	{"GET", "/api/breakers/{}", false},
	{"POST", "/api/breakers/{}/open", true},
	{"POST", "/api/breakers/{}/close", true},
	{"POST", "/api/breakers/{}/override", true},
	{"POST", "/api/breakers/payments/{}", true},
	{"GET", "/api/governance", false},
	{"POST", "/api/governance/kill-switch", true},
	{"POST", "/api/governance/emergency", true},
	{"GET", "/api/dlq/stats", false},
	{"GET", "/api/dlq", false},
	{"GET", "/api/dlq/{}", false},
	{"POST", "/api/dlq/replay-batch", true},
	{"POST", "/api/dlq/{}/resolve", true},
	{"POST", "/api/dlq/0b6a3c1e-52c4-4e39-a1c4-4f1f25d8e3a1/{}", true},
	{"GET", "/api/audit", false},
	{"GET", "/api/audit/verify", false},
	{"GET", "/api/{}", false},
}

// FuzzAPI sends arbitrary path segments, query strings and bodies, with and
// without the admin token, to every route of the admin API. Over an operator
// that accepts everything, no request crashes the server or gets a 500;
// every error is a JSON body naming the problem; a write without the token
// is refused before anything reaches the operator; and a breaker command
// that does reach it is valid.
func FuzzAPI(f *testing.F) {
	env := testenv.NATS(f)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := topology.Ensure(ctx, env.JS, topology.Config{})
	require.NoError(f, err)
	op := &fakeOperator{}
	srv, err := admin.New(admin.Config{AdminToken: tok}, admin.Deps{JetStream: env.JS, Operator: op})
	require.NoError(f, err)
	h := srv.Handler()
	seeds := []struct {
		route       int
		arg, query  string
		body        string
		authorized  bool
		actorHeader string
	}{
		{3, "payments", "", `{"reason":"incident 42","ttl":"30m"}`, true, "alice"},
		{3, "pay.*", "", `{"reason":"r"}`, true, ""},
		{3, "pay>ments", "", `{"reason":"r"}`, true, ""},
		{3, "pay\x00ments", "", `{"reason":"r"}`, true, ""},
		{4, "payments", "", `{"reason":"r","trigger_replay":true}`, false, ""},
		{5, "payments", "", `{"reason":"r","override":{"failure_threshold":10}}`, true, ""},
		{5, "payments", "", `{"reason":"r","override":{"failure_threshold":"ten"}}`, true, ""},
		{6, "metrics-only", "", `{"reason":"r"}`, true, "bob\r\nX-Evil: 1"},
		{8, "", "", `{"enabled":true,"reason":"r"}`, true, ""},
		{9, "", "", `{"level":7,"reason":"r"}`, true, ""},
		{11, "", "service=payments&status=pending,requires_review&older_than=1h&limit=10", ``, false, ""},
		{11, "", "limit=0&status=%00", ``, false, ""},
		{11, "", "created_after=yesterday", ``, false, ""},
		{12, "not-a-uuid", "", ``, false, ""},
		{13, "", "", `{"service":"payments","dry_run":true,"reason":"r"}`, true, ""},
		{13, "", "", `{"reason":"r"} {"reason":"again"}`, true, ""},
		{14, "0b6a3c1e-52c4-4e39-a1c4-4f1f25d8e3a1", "", `{"reason":"fixed","note":"by hand"}`, true, ""},
		{15, "explode", "", `{"reason":"r"}`, true, ""},
		{16, "", "after=-1&limit=1001", ``, false, ""},
		{16, "", "subject=dlq:x&after=3", ``, false, ""},
		{18, "../../etc/passwd", "", ``, false, ""},
		{3, "payments", "", strings.Repeat(`{"reason":"`, 100), true, ""},
		{3, "payments", "", `{"reason":"` + strings.Repeat("x", 70<<10) + `"}`, true, ""},
	}
	for _, s := range seeds {
		f.Add(uint8(s.route), s.arg, s.query, []byte(s.body), s.authorized, s.actorHeader)
	}
	f.Fuzz(func(t *testing.T, routeIndex uint8, arg, query string, body []byte, authorized bool, actor string) {
		route := fuzzRoutes[int(routeIndex)%len(fuzzRoutes)]
		target := strings.Replace(route.path, "{}", url.PathEscape(arg), 1)
		if query != "" {
			target += "?" + query
		}
		req, err := http.NewRequestWithContext(t.Context(), route.method, target, strings.NewReader(string(body)))
		if err != nil {
			t.Skip("not a request a client can send")
		}
		if authorized {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if actor != "" {
			if strings.ContainsAny(actor, "\r\n\x00") {
				t.Skip("not a header a client can send")
			}
			req.Header.Set("X-Baldur-Actor", actor)
		}
		before := len(op.snapshot())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		require.Less(t, rec.Code, 500, "%s %s: %s", route.method, target, rec.Body.String())
		if rec.Code >= 400 {
			require.True(t, strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json"), "%s %s answered %d without JSON", route.method, target, rec.Code)
			var e struct {
				Error string `json:"error"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), rec.Body.String())
			require.NotEmpty(t, e.Error, "%s %s answered %d without a reason", route.method, target, rec.Code)
		}
		calls := op.snapshot()[before:]
		// A write without the token is refused, unless the path is not a
		// route at all (404, 405) or the mux redirects it to its clean form
		// (the redirected request then meets the same check).
		if route.write && !authorized && rec.Code/100 != 3 && rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed {
			require.Equal(t, http.StatusUnauthorized, rec.Code, "%s %s without the token", route.method, target)
		}
		if !authorized {
			for _, c := range calls {
				require.False(t, isWriteCall(c), "a write reached the operator without the token: %+v", c)
			}
		}
		for _, c := range calls {
			if bc, ok := c.(breakerCall); ok {
				require.NoError(t, events.ValidateServiceName(bc.Svc))
				require.NoError(t, bc.Cmd.Validate(), "an invalid command reached the operator")
			}
		}
	})
}
