package domain_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

const (
	pending           = domain.DLQPending
	replaying         = domain.DLQReplaying
	replayed          = domain.DLQReplayed
	requiresReview    = domain.DLQRequiresReview
	reviewing         = domain.DLQReviewing
	resolved          = domain.DLQResolved
	rejected          = domain.DLQRejected
	archived          = domain.DLQArchived
	expired           = domain.DLQExpired
	permanentlyFailed = domain.DLQPermanentlyFailed
)

func TestDLQStatus_ValidTerminalLive(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status                 domain.DLQStatus
		valid, terminal, alive bool
	}{
		{pending, true, false, true},
		{replaying, true, false, true},
		{requiresReview, true, false, true},
		{reviewing, true, false, true},
		{replayed, true, true, false},
		{resolved, true, true, false},
		{rejected, true, true, false},
		{archived, true, true, false},
		{expired, true, true, false},
		{permanentlyFailed, true, true, false},
		{"", false, false, false},
		{"PENDING", false, false, false},
		{"done", false, false, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.status), func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.valid, tt.status.Valid(), "Valid")
			require.Equal(t, tt.terminal, tt.status.Terminal(), "Terminal")
			require.Equal(t, tt.alive, tt.status.Live(), "Live")
		})
	}
}

func TestDLQLiveStatusesSQL_MatchesLive(t *testing.T) {
	t.Parallel()
	var want string
	for _, s := range domain.DLQStatuses {
		if s.Live() {
			if want != "" {
				want += ","
			}
			want += "'" + string(s) + "'"
		}
	}
	require.Equal(t, want, domain.DLQLiveStatusesSQL)
}

// TestCanTransition_ExactlyTheDocumentedEdges checks every pair of statuses
// against an independent copy of the state machine, so that adding or
// dropping an edge is a deliberate change to both.
func TestCanTransition_ExactlyTheDocumentedEdges(t *testing.T) {
	t.Parallel()
	allowed := map[domain.DLQStatus][]domain.DLQStatus{
		pending:        {replaying, reviewing, resolved, rejected, archived, expired},
		replaying:      {replayed, pending, requiresReview},
		requiresReview: {reviewing, pending, replaying, resolved, rejected, archived, permanentlyFailed, expired},
		reviewing:      {requiresReview, pending, replaying, resolved, rejected, archived, permanentlyFailed, expired},
	}
	for _, from := range domain.DLQStatuses {
		for _, to := range domain.DLQStatuses {
			want := slices.Contains(allowed[from], to)
			require.Equal(t, want, domain.CanTransition(from, to), "%s → %s", from, to)
			err := domain.CheckTransition(from, to)
			if want {
				require.NoError(t, err, "%s → %s", from, to)
			} else {
				require.ErrorIs(t, err, domain.ErrInvalidTransition, "%s → %s", from, to)
			}
		}
		require.ElementsMatch(t, allowed[from], domain.DLQTransitionsFrom(from), "edges from %s", from)
	}
}

func TestCanTransition_TerminalStatusesAreTerminal(t *testing.T) {
	t.Parallel()
	targets := append(slices.Clone(domain.DLQStatuses), "", "bogus")
	for _, from := range domain.DLQStatuses {
		if !from.Terminal() {
			continue
		}
		for _, to := range targets {
			require.False(t, domain.CanTransition(from, to), "%s → %s", from, to)
			err := domain.CheckTransition(from, to)
			require.ErrorIs(t, err, domain.ErrInvalidTransition)
			if to.Valid() {
				require.ErrorContains(t, err, string(from)+" is terminal")
			}
		}
		require.Empty(t, domain.DLQTransitionsFrom(from))
	}
}

func TestCanTransition_NoSelfLoops(t *testing.T) {
	t.Parallel()
	for _, s := range domain.DLQStatuses {
		require.False(t, domain.CanTransition(s, s), s)
		err := domain.CheckTransition(s, s)
		require.ErrorIs(t, err, domain.ErrInvalidTransition)
		if !s.Terminal() {
			require.ErrorContains(t, err, "already "+string(s))
		}
	}
}

func TestCanTransition_EveryStatusReachableFromIngest(t *testing.T) {
	t.Parallel()
	seen := map[domain.DLQStatus]bool{domain.InitialDLQStatus: true}
	queue := []domain.DLQStatus{domain.InitialDLQStatus}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, to := range domain.DLQTransitionsFrom(s) {
			if !seen[to] {
				seen[to] = true
				queue = append(queue, to)
			}
		}
	}
	for _, s := range domain.DLQStatuses {
		require.True(t, seen[s], "%s is unreachable from %s", s, domain.InitialDLQStatus)
	}
}

func TestCanTransition_LiveStatusesCanBeClosed(t *testing.T) {
	t.Parallel()
	// Every live status can end, directly or through replaying.
	for _, s := range domain.DLQStatuses {
		if !s.Live() {
			continue
		}
		var terminal bool
		for _, to := range domain.DLQTransitionsFrom(s) {
			terminal = terminal || to.Terminal()
		}
		require.True(t, terminal, "%s has no direct way to a terminal status", s)
	}
}

func TestCheckTransition_ErrorNamesBothStatuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		from, to domain.DLQStatus
		unknown  bool
		contains string
	}{
		{"not an edge", pending, replayed, false, "not an edge"},
		{"terminal", replayed, pending, false, "replayed is terminal"},
		{"self loop", pending, pending, false, "already pending"},
		{"unknown from", "bogus", pending, true, `"bogus"`},
		{"unknown to", pending, "bogus", true, `"bogus"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := domain.CheckTransition(tt.from, tt.to)
			require.ErrorIs(t, err, domain.ErrInvalidTransition)
			require.Equal(t, tt.unknown, errors.Is(err, domain.ErrUnknownDLQStatus))
			require.ErrorContains(t, err, `"`+string(tt.from)+`" → "`+string(tt.to)+`"`)
			require.ErrorContains(t, err, tt.contains)
		})
	}
}

func TestCanTransitionBy_WhoTakesEachEdge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		actor    domain.DLQActor
		from, to domain.DLQStatus
		want     bool
	}{
		{domain.DLQActorReplay, pending, replaying, true},
		{domain.DLQActorOperator, pending, replaying, false},
		{domain.DLQActorReplay, replaying, replayed, true},
		{domain.DLQActorReplay, replaying, pending, true},
		{domain.DLQActorWatchdog, replaying, pending, true},
		{domain.DLQActorOperator, replaying, pending, false},
		{domain.DLQActorOperator, replaying, resolved, false},
		{domain.DLQActorReplay, replaying, requiresReview, true},
		{domain.DLQActorOperator, requiresReview, pending, true},
		{domain.DLQActorOperator, reviewing, pending, true},
		{domain.DLQActorOperator, pending, rejected, true},
		{domain.DLQActorOperator, requiresReview, resolved, true},
		{domain.DLQActorOperator, requiresReview, permanentlyFailed, true},
		{domain.DLQActorWatchdog, pending, expired, true},
		{domain.DLQActorOperator, pending, expired, false},
		{domain.DLQActorWatchdog, replaying, expired, false},
		{domain.DLQActorIngest, pending, replaying, false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, domain.CanTransitionBy(tt.actor, tt.from, tt.to), "%s: %s → %s", tt.actor, tt.from, tt.to)
	}
}

func TestDLQTransitions_DocumentedAndCopied(t *testing.T) {
	t.Parallel()
	ts := domain.DLQTransitions()
	require.NotEmpty(t, ts)
	for _, tr := range ts {
		require.True(t, domain.CanTransition(tr.From, tr.To))
		require.NotEmpty(t, tr.By, "%s → %s has no actor", tr.From, tr.To)
		require.NotEmpty(t, tr.Why, "%s → %s is not explained", tr.From, tr.To)
		require.NotContains(t, tr.By, domain.DLQActorIngest, "ingest only creates entries")
	}
	ts[0].By[0] = "mallory"
	ts[0].To = replayed
	require.NotEqual(t, domain.DLQActor("mallory"), domain.DLQTransitions()[0].By[0])
	require.True(t, domain.CanTransition(pending, replaying))
}

func TestDefaultResolution(t *testing.T) {
	t.Parallel()
	tests := map[domain.DLQStatus]domain.ResolutionType{
		replayed:          domain.ResolutionAutoReplay,
		resolved:          domain.ResolutionManualFix,
		rejected:          domain.ResolutionRejected,
		archived:          domain.ResolutionArchived,
		expired:           domain.ResolutionTTLExpired,
		permanentlyFailed: "",
		pending:           "",
		requiresReview:    "",
	}
	for status, want := range tests {
		require.Equal(t, want, domain.DefaultResolution(status), status)
		if want != "" {
			require.True(t, want.Valid())
		}
	}
}

func TestParseFailureDomain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    domain.FailureDomain
		wantErr bool
	}{
		{"", domain.DomainCustom, false},
		{"external_service", domain.DomainExternalService, false},
		{"data_sync", domain.DomainDataSync, false},
		{"custom", domain.DomainCustom, false},
		{"External_Service", "", true},
		{"database", "", true},
	}
	for _, tt := range tests {
		got, err := domain.ParseFailureDomain(tt.in)
		if tt.wantErr {
			require.ErrorIs(t, err, domain.ErrInvalidFailureDomain, tt.in)
			require.ErrorContains(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got)
		require.True(t, got.Valid())
	}
}

func TestEnumValid(t *testing.T) {
	t.Parallel()
	for _, r := range domain.ResolutionTypes {
		require.True(t, r.Valid(), r)
	}
	for _, a := range domain.RecommendedActions {
		require.True(t, a.Valid(), a)
	}
	for _, d := range domain.FailureDomains {
		require.True(t, d.Valid(), d)
	}
	require.False(t, domain.ResolutionType("").Valid())
	require.False(t, domain.ResolutionType("fixed").Valid())
	require.False(t, domain.RecommendedAction("").Valid())
	require.False(t, domain.RecommendedAction("panic").Valid())
	require.False(t, domain.FailureDomain("").Valid())
}

func TestRequeueEntry_FreshRetriesDueNow(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	history := []domain.ErrorRecord{{At: at.Add(-time.Hour), Attempt: 2, Error: "timeout"}}
	for _, from := range []domain.DLQStatus{requiresReview, reviewing} {
		e := domain.DLQEntry{ID: "e1", Status: from, RetryCount: 2, MaxRetries: 2, ErrorHistory: history,
			LastError: "timeout", RecommendedAction: domain.RecommendManualCheck, NextAttemptAt: at.Add(-time.Hour)}
		got, err := domain.RequeueEntry(e, at)
		require.NoError(t, err)
		require.Equal(t, pending, got.Status)
		require.Zero(t, got.RetryCount)
		require.Equal(t, at, got.NextAttemptAt)
		require.Equal(t, at, got.UpdatedAt)
		require.Empty(t, got.RecommendedAction)
		require.Equal(t, history, got.ErrorHistory, "history is kept")
		require.Equal(t, "timeout", got.LastError)
	}
	for _, from := range []domain.DLQStatus{pending, replaying, replayed, resolved} {
		_, err := domain.RequeueEntry(domain.DLQEntry{ID: "e9", Status: from}, at)
		require.ErrorIs(t, err, domain.ErrInvalidTransition, from)
		require.ErrorContains(t, err, "entry e9")
	}
}

func TestCloseEntry_TerminalWithResolution(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	due := at.Add(-time.Minute)
	tests := []struct {
		from, to domain.DLQStatus
		want     domain.ResolutionType
		wantErr  string
	}{
		{pending, resolved, domain.ResolutionManualFix, ""},
		{requiresReview, rejected, domain.ResolutionRejected, ""},
		{reviewing, archived, domain.ResolutionArchived, ""},
		{pending, expired, domain.ResolutionTTLExpired, ""},
		{requiresReview, permanentlyFailed, "", ""},
		{pending, permanentlyFailed, "", "not an edge"},
		{replaying, resolved, "", "not an edge"},
		{replaying, replayed, "", "only a successful replay"},
		{pending, reviewing, "", "not terminal"},
		{resolved, rejected, "", "resolved is terminal"},
	}
	for _, tt := range tests {
		e := domain.DLQEntry{ID: "e1", Status: tt.from, NextAttemptAt: due, RecommendedAction: domain.RecommendManualCheck}
		got, err := domain.CloseEntry(e, tt.to, "fixed by hand", at)
		if tt.wantErr != "" {
			require.ErrorIs(t, err, domain.ErrInvalidTransition, "%s → %s", tt.from, tt.to)
			require.ErrorContains(t, err, tt.wantErr)
			continue
		}
		require.NoError(t, err, "%s → %s", tt.from, tt.to)
		require.Equal(t, tt.to, got.Status)
		require.Equal(t, tt.want, got.ResolutionType)
		require.Equal(t, "fixed by hand", got.ResolutionNote)
		require.Equal(t, at, got.ResolvedAt)
		require.Equal(t, due, got.NextAttemptAt, "left as it was")
		require.Empty(t, got.RecommendedAction)
	}
}
