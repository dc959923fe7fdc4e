package domain_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

func TestEmergencyLevel_NamesAndParsing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    domain.EmergencyLevel
		wantErr bool
	}{
		{"NORMAL", domain.EmergencyNormal, false},
		{"LEVEL_1", domain.EmergencyLevel1, false},
		{"LEVEL_2", domain.EmergencyLevel2, false},
		{"LEVEL_3", domain.EmergencyLevel3, false},
		{"0", domain.EmergencyNormal, false},
		{"3", domain.EmergencyLevel3, false},
		{"4", 0, true},
		{"-1", 0, true},
		{"LEVEL_4", 0, true},
		{"normal", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := domain.ParseEmergencyLevel(tt.in)
		if tt.wantErr {
			require.ErrorIs(t, err, domain.ErrInvalidEmergencyLevel, tt.in)
			require.ErrorContains(t, err, fmt.Sprintf("%q", tt.in))
			continue
		}
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got, tt.in)
	}
	for i, l := range domain.EmergencyLevels {
		require.Equal(t, domain.EmergencyLevel(i), l)
		require.True(t, l.Valid())
		require.NoError(t, l.Validate())
		back, err := domain.ParseEmergencyLevel(l.String())
		require.NoError(t, err)
		require.Equal(t, l, back)
	}
	require.Equal(t, "LEVEL_7", domain.EmergencyLevel(7).String())
	require.ErrorIs(t, domain.EmergencyLevel(7).Validate(), domain.ErrInvalidEmergencyLevel)
	require.ErrorIs(t, domain.EmergencyLevel(-1).Validate(), domain.ErrInvalidEmergencyLevel)
}

func TestEmergencyLevel_TierAdmissionSeedMeanings(t *testing.T) {
	t.Parallel()
	// want[level][tier-1]
	want := map[domain.EmergencyLevel][3]float64{
		domain.EmergencyNormal:   {1, 1, 1},
		domain.EmergencyLevel1:   {1, 1, 0},   // tier 3 blocked
		domain.EmergencyLevel2:   {1, 0, 0},   // tiers 2 and 3 blocked
		domain.EmergencyLevel3:   {0.5, 0, 0}, // tier 1 at 50 %
		domain.EmergencyLevel(9): {0.5, 0, 0}, // beyond 3: as strict as LEVEL_3
	}
	for level, tiers := range want {
		for i, w := range tiers {
			require.InDelta(t, w, level.TierAdmission(i+1), 0, "%s tier %d", level, i+1)
		}
		// An unconfigured tier is treated as tier 3.
		require.InDelta(t, tiers[2], level.TierAdmission(0), 0, "%s tier 0", level)
		require.InDelta(t, tiers[2], level.TierAdmission(4), 0, "%s tier 4", level)
	}
	require.False(t, domain.EmergencyLevel1.BlocksAutomation())
	require.True(t, domain.EmergencyLevel2.BlocksAutomation())
	require.True(t, domain.EmergencyLevel3.BlocksAutomation())
}

func budget(remaining float64) domain.ErrorBudget {
	return domain.ErrorBudget{Enabled: true, SLOTarget: 0.999, Remaining: remaining}
}

func TestGovernance_CheckReplaySeedOrder(t *testing.T) {
	t.Parallel()
	killSwitch := domain.KillSwitchState{Active: true, Actor: "oncall", Reason: "incident 42"}
	tests := []struct {
		name    string
		g       domain.Governance
		allowed bool
		blocker domain.GovernanceBlocker
		reason  string
		warning string
	}{
		{name: "zero state allows", g: domain.Governance{}, allowed: true},
		{name: "kill switch blocks", g: domain.Governance{KillSwitch: killSwitch},
			blocker: domain.BlockerKillSwitch, reason: "kill switch is on (by oncall: incident 42)"},
		{name: "kill switch is checked before the emergency level",
			g:       domain.Governance{KillSwitch: killSwitch, Emergency: domain.EmergencyState{Level: domain.EmergencyLevel3}},
			blocker: domain.BlockerKillSwitch, reason: "kill switch"},
		{name: "level 1 allows", g: domain.Governance{Emergency: domain.EmergencyState{Level: domain.EmergencyLevel1}},
			allowed: true},
		{name: "level 2 blocks", g: domain.Governance{Emergency: domain.EmergencyState{Level: domain.EmergencyLevel2, Actor: "cto"}},
			blocker: domain.BlockerEmergencyLevel, reason: "emergency level LEVEL_2 blocks automated replay"},
		{name: "level 3 blocks", g: domain.Governance{Emergency: domain.EmergencyState{Level: domain.EmergencyLevel3}},
			blocker: domain.BlockerEmergencyLevel, reason: "LEVEL_3"},
		{name: "emergency level is checked before the budget",
			g:       domain.Governance{Emergency: domain.EmergencyState{Level: domain.EmergencyLevel2}, ErrorBudget: budget(0)},
			blocker: domain.BlockerEmergencyLevel, reason: "LEVEL_2"},
		{name: "exhausted budget with the gate disabled allows",
			g: domain.Governance{ErrorBudget: domain.ErrorBudget{Remaining: 0}}, allowed: true},
		{name: "budget below 10 % blocks", g: domain.Governance{ErrorBudget: budget(0.05)},
			blocker: domain.BlockerErrorBudget, reason: "error budget 5.0 % remaining is below the 10.0 % gate"},
		{name: "empty budget blocks", g: domain.Governance{ErrorBudget: budget(0)},
			blocker: domain.BlockerErrorBudget, reason: "0.0 %"},
		{name: "budget at exactly 10 % warns", g: domain.Governance{ErrorBudget: budget(0.10)},
			allowed: true, warning: "error budget 10.0 % remaining is below 20.0 %"},
		{name: "budget below 20 % warns", g: domain.Governance{ErrorBudget: budget(0.19)},
			allowed: true, warning: "19.0 %"},
		{name: "budget at 20 % is fine", g: domain.Governance{ErrorBudget: budget(0.20)}, allowed: true},
		{name: "full budget is fine", g: domain.Governance{ErrorBudget: budget(1)}, allowed: true},
		{name: "a NaN budget fails closed", g: domain.Governance{ErrorBudget: budget(math.NaN())},
			blocker: domain.BlockerErrorBudget, reason: "NaN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := tt.g.CheckReplay()
			require.Equal(t, tt.allowed, d.Allowed)
			require.Equal(t, tt.blocker, d.Blocker)
			require.False(t, d.Overridden)
			if tt.allowed {
				require.Empty(t, d.Reason)
				require.NoError(t, d.Err())
			} else {
				require.Contains(t, d.Reason, tt.reason)
				require.ErrorIs(t, d.Err(), domain.ErrGovernanceBlocked)
				require.ErrorContains(t, d.Err(), d.Reason)
			}
			if tt.warning == "" {
				require.Empty(t, d.Warning)
			} else {
				require.Contains(t, d.Warning, tt.warning)
			}
		})
	}
}

func TestGovernanceDecision_ErrWrapsTheBlockersSentinel(t *testing.T) {
	t.Parallel()
	tests := map[domain.GovernanceBlocker]error{
		domain.BlockerKillSwitch:     domain.ErrKillSwitchOn,
		domain.BlockerEmergencyLevel: domain.ErrEmergencyLevelBlocks,
		domain.BlockerErrorBudget:    domain.ErrErrorBudgetExhausted,
	}
	all := []error{domain.ErrKillSwitchOn, domain.ErrEmergencyLevelBlocks, domain.ErrErrorBudgetExhausted}
	for blocker, sentinel := range tests {
		err := domain.GovernanceDecision{Blocker: blocker, Reason: "because"}.Err()
		require.ErrorIs(t, err, domain.ErrGovernanceBlocked)
		require.ErrorIs(t, err, sentinel)
		for _, other := range all {
			if other != sentinel {
				require.False(t, errors.Is(err, other), "%s also matches %v", blocker, other)
			}
		}
	}
	require.ErrorIs(t, domain.GovernanceDecision{Reason: "x"}.Err(), domain.ErrGovernanceBlocked)
	require.NoError(t, domain.GovernanceDecision{Allowed: true, Warning: "w"}.Err())
}

func TestGovernance_CheckManualControlKillSwitchNeedsOverride(t *testing.T) {
	t.Parallel()
	on := domain.Governance{KillSwitch: domain.KillSwitchState{Active: true, Actor: "oncall"}}
	severe := domain.Governance{Emergency: domain.EmergencyState{Level: domain.EmergencyLevel3}, ErrorBudget: budget(0)}
	tests := []struct {
		name       string
		g          domain.Governance
		override   bool
		allowed    bool
		overridden bool
	}{
		{"kill switch off", domain.Governance{}, false, true, false},
		{"kill switch off, override is not needed", domain.Governance{}, true, true, false},
		{"kill switch on refuses", on, false, false, false},
		{"kill switch on with override", on, true, true, true},
		{"emergency and budget never block manual control", severe, false, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := tt.g.CheckManualControl(tt.override)
			require.Equal(t, tt.allowed, d.Allowed)
			require.Equal(t, tt.overridden, d.Overridden)
			if !tt.allowed {
				require.Equal(t, domain.BlockerKillSwitch, d.Blocker)
				require.ErrorIs(t, d.Err(), domain.ErrKillSwitchOn)
				require.Contains(t, d.Reason, "override_kill_switch")
				require.Contains(t, d.Reason, "oncall")
			}
			if tt.overridden {
				require.Contains(t, d.Warning, "overridden")
			}
		})
	}
}

func TestErrorBudgetRemaining(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		target        float64
		total, failed int64
		want          float64
		level         domain.ErrorBudgetLevel
	}{
		{"no calls keeps the whole budget", 0.999, 0, 0, 1, domain.ErrorBudgetOK},
		{"no failures", 0.999, 10_000, 0, 1, domain.ErrorBudgetOK},
		{"half spent", 0.999, 10_000, 5, 0.5, domain.ErrorBudgetOK},
		{"exactly 20 % left", 0.999, 10_000, 8, 0.2, domain.ErrorBudgetOK},
		{"exactly 10 % left warns", 0.999, 10_000, 9, 0.1, domain.ErrorBudgetWarning},
		{"all spent", 0.999, 10_000, 10, 0, domain.ErrorBudgetCritical},
		{"overspent is clamped to zero", 0.999, 10_000, 500, 0, domain.ErrorBudgetCritical},
		{"every call failed", 0.99, 100, 100, 0, domain.ErrorBudgetCritical},
		{"lenient target", 0.9, 1000, 95, 0.05, domain.ErrorBudgetCritical},
		{"three nines, few calls", 0.999, 100, 0, 1, domain.ErrorBudgetOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.ErrorBudgetRemaining(tt.target, tt.total, tt.failed)
			require.NoError(t, err)
			require.InDelta(t, tt.want, got, 0, "exact after rounding")
			require.Equal(t, tt.level, domain.ErrorBudgetLevelOf(got))
		})
	}
}

func TestErrorBudgetRemaining_Refuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		target        float64
		total, failed int64
		is            error
	}{
		{"target 1 leaves no budget", 1, 10, 0, domain.ErrInvalidSLOTarget},
		{"target 0", 0, 10, 0, domain.ErrInvalidSLOTarget},
		{"target above 1", 99.9, 10, 0, domain.ErrInvalidSLOTarget},
		{"target NaN", math.NaN(), 10, 0, domain.ErrInvalidSLOTarget},
		{"negative total", 0.999, -1, 0, domain.ErrInvalidCallCounts},
		{"negative failed", 0.999, 10, -1, domain.ErrInvalidCallCounts},
		{"more failed than calls", 0.999, 10, 11, domain.ErrInvalidCallCounts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := domain.ErrorBudgetRemaining(tt.target, tt.total, tt.failed)
			require.ErrorIs(t, err, tt.is)
			_, err = domain.ComputeErrorBudget(tt.target, tt.total, tt.failed, time.Time{})
			require.ErrorIs(t, err, tt.is)
		})
	}
}

func TestErrorBudgetRemaining_PropertyBoundedAndMonotone(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 5))
	for range 5000 {
		target := 0.5 + rng.Float64()*0.4999
		total := rng.Int64N(1_000_000)
		failed := int64(0)
		if total > 0 {
			failed = rng.Int64N(total + 1)
		}
		r, err := domain.ErrorBudgetRemaining(target, total, failed)
		require.NoError(t, err)
		require.GreaterOrEqual(t, r, 0.0)
		require.LessOrEqual(t, r, 1.0)
		if failed < total {
			more, err := domain.ErrorBudgetRemaining(target, total, failed+1)
			require.NoError(t, err)
			require.LessOrEqual(t, more, r, "one more failure never adds budget")
		}
	}
}

func TestComputeErrorBudget(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	b, err := domain.ComputeErrorBudget(0.999, 10_000, 9, at)
	require.NoError(t, err)
	require.Equal(t, domain.ErrorBudget{Enabled: true, SLOTarget: 0.999, Remaining: 0.1,
		Level: domain.ErrorBudgetWarning, TotalCalls: 10_000, FailedCalls: 9, UpdatedAt: at}, b)
	d := domain.Governance{ErrorBudget: b}.CheckReplay()
	require.True(t, d.Allowed)
	require.NotEmpty(t, d.Warning)
}

func TestGovernance_Validate(t *testing.T) {
	t.Parallel()
	require.NoError(t, domain.Governance{}.Validate())
	require.NoError(t, domain.Governance{ErrorBudget: budget(0.5)}.Validate())
	require.NoError(t, domain.Governance{ErrorBudget: domain.ErrorBudget{Remaining: 7}}.Validate(),
		"a disabled gate is not checked")

	err := domain.Governance{Emergency: domain.EmergencyState{Level: 4}}.Validate()
	require.ErrorIs(t, err, domain.ErrInvalidEmergencyLevel)

	err = domain.Governance{ErrorBudget: domain.ErrorBudget{Enabled: true, SLOTarget: 1, Remaining: 1.5}}.Validate()
	require.ErrorIs(t, err, domain.ErrInvalidSLOTarget)
	require.ErrorContains(t, err, "remaining 1.5")
}

func TestGovernance_JSONIsKeyedLikeTheBucket(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	g := domain.Governance{
		KillSwitch:  domain.KillSwitchState{Active: true, Actor: "oncall", Reason: "incident", UpdatedAt: at},
		Emergency:   domain.EmergencyState{Level: domain.EmergencyLevel2, Actor: "cto", UpdatedAt: at},
		ErrorBudget: domain.ErrorBudget{Enabled: true, SLOTarget: 0.999, Remaining: 0.5, Level: domain.ErrorBudgetOK},
	}
	raw, err := json.Marshal(g)
	require.NoError(t, err)
	var keys map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &keys))
	require.ElementsMatch(t,
		[]string{domain.GovernanceKeyKillSwitch, domain.GovernanceKeyEmergencyLevel, domain.GovernanceKeyErrorBudget},
		mapKeys(keys))
	require.JSONEq(t, `{"level": 2, "actor": "cto", "updated_at": "2025-03-01T12:00:00Z"}`,
		string(keys[domain.GovernanceKeyEmergencyLevel]))

	// A reader assembles the state key by key.
	var back domain.Governance
	require.NoError(t, json.Unmarshal(keys[domain.GovernanceKeyKillSwitch], &back.KillSwitch))
	require.NoError(t, json.Unmarshal(keys[domain.GovernanceKeyEmergencyLevel], &back.Emergency))
	require.NoError(t, json.Unmarshal(keys[domain.GovernanceKeyErrorBudget], &back.ErrorBudget))
	require.Equal(t, g, back)
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func ExampleGovernance_CheckReplay() {
	g := domain.Governance{
		Emergency:   domain.EmergencyState{Level: domain.EmergencyLevel1},
		ErrorBudget: domain.ErrorBudget{Enabled: true, SLOTarget: 0.999, Remaining: 0.15},
	}
	d := g.CheckReplay()
	fmt.Println(d.Allowed, d.Warning)

	g.Emergency = domain.EmergencyState{Level: domain.EmergencyLevel2, Actor: "oncall", Reason: "region failover"}
	d = g.CheckReplay()
	fmt.Println(d.Allowed, d.Blocker)
	fmt.Println(d.Err())
	// Output:
	// true error budget 15.0 % remaining is below 20.0 % (SLO target 0.999)
	// false emergency_level
	// blocked by governance: emergency level LEVEL_2 blocks automated replay (LEVEL_2 and above) (by oncall: region failover)
}

func TestGovernanceWithKey(t *testing.T) {
	t.Parallel()
	var g domain.Governance
	g, known, err := g.WithKey(domain.GovernanceKeyKillSwitch, []byte(`{"active":true,"actor":"sre","reason":"incident"}`))
	require.NoError(t, err)
	require.True(t, known)
	require.True(t, g.KillSwitch.Active)

	g, _, err = g.WithKey(domain.GovernanceKeyEmergencyLevel, []byte(`{"level":2}`))
	require.NoError(t, err)
	require.Equal(t, domain.EmergencyLevel2, g.Emergency.Level)

	// Refused values leave the governance as it was.
	for _, bad := range []string{`{"level":7}`, `{"level":1,"extra":true}`, `not json`} {
		next, known, err := g.WithKey(domain.GovernanceKeyEmergencyLevel, []byte(bad))
		require.Error(t, err, bad)
		require.True(t, known)
		require.Equal(t, g, next)
	}

	// A deleted key is its zero value; other keys are not governance inputs.
	g, _, err = g.WithKey(domain.GovernanceKeyKillSwitch, nil)
	require.NoError(t, err)
	require.False(t, g.KillSwitch.Active)
	next, known, err := g.WithKey(domain.GovernanceKeyAggregate, []byte(`{}`))
	require.NoError(t, err)
	require.False(t, known)
	require.Equal(t, g, next)
}
