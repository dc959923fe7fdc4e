package admin_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/admin"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
	"github.com/baldurfleet/baldur/internal/testenv"
	"github.com/baldurfleet/baldur/internal/topology"
)

func TestParseOperatorTokens(t *testing.T) {
	t.Parallel()
	ops, err := admin.ParseOperatorTokens([]byte("# on-call\nalice: alice-0123456789abcdef\n\n  bob:bob-0123456789abcdef  \n"))
	require.NoError(t, err)
	require.Equal(t, []admin.OperatorToken{{Name: "alice", Token: "alice-0123456789abcdef"}, {Name: "bob", Token: "bob-0123456789abcdef"}}, ops)
	for in, want := range map[string]string{
		"alice":                      "want name:token",
		":tok-0123456789abcdef":      "the name must be",
		"alice:short":                "at least 16 bytes",
		"alice:tok 0123456789abcdef": "without white space",
		"a:tok-0123456789abcdef\na:tok-fedcba9876543210": "a is also on line 1",
		"a:tok-0123456789abcdef\nb:tok-0123456789abcdef": "the same token as line 1",
	} {
		_, err := admin.ParseOperatorTokens([]byte(in))
		require.ErrorIs(t, err, admin.ErrConfig, in)
		require.ErrorContains(t, err, want, in)
		require.NotContains(t, err.Error(), "0123456789abcdef", "a token is never printed")
	}
}

// TestWritesAreRecordedUnderTheOperatorsName is issue 14's per-operator
// identity: a write made with an operator's own token carries their name as
// the actor, whatever X-Baldur-Actor claims; the shared token keeps the
// header (or "dashboard"); an unknown token writes nothing.
func TestWritesAreRecordedUnderTheOperatorsName(t *testing.T) {
	t.Parallel()
	env := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := topology.Ensure(ctx, env.JS, topology.Config{})
	require.NoError(t, err)
	op := &fakeOperator{}
	srv, err := admin.New(admin.Config{AdminToken: "shared-0123456789abcdef",
		Operators: []admin.OperatorToken{{Name: "alice", Token: "alice-0123456789abcdef"}}},
		admin.Deps{JetStream: env.JS, Operator: op})
	require.NoError(t, err)
	h := srv.Handler()

	rec, _ := do(t, h, "POST", "/api/breakers/payments/open", `{"reason":"vendor down"}`,
		"Authorization", "Bearer alice-0123456789abcdef", admin.ActorHeader, "mallory")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, breakerCall{"payments", events.BreakerCommand{Action: domain.ActionOpen, Actor: "alice", Reason: "vendor down"}}, op.last())

	rec, _ = do(t, h, "POST", "/api/breakers/payments/auto", `{"reason":"back"}`,
		"Authorization", "Bearer shared-0123456789abcdef", admin.ActorHeader, "bob")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, breakerCall{"payments", events.BreakerCommand{Action: domain.ActionAuto, Actor: "bob", Reason: "back"}}, op.last())

	before := op.last()
	rec, _ = do(t, h, "POST", "/api/breakers/payments/open", `{"reason":"x"}`, "Authorization", "Bearer alice-0123456789abcdeX")
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	require.Equal(t, before, op.last(), "nothing written")

	// An operator's token also reads what needs a token.
	rec, _ = do(t, h, "GET", "/api/audit", "", "Authorization", "Bearer alice-0123456789abcdef")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}
