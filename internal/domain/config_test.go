package domain_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

func TestDefaultConfigIsTheSeeds(t *testing.T) {
	t.Parallel()
	c := domain.DefaultConfig()
	require.NoError(t, c.Validate())
	require.Equal(t, domain.Config{
		FailureThreshold:      5,
		FailureRateThreshold:  50,
		MinimumCalls:          10,
		Window:                domain.Duration(time.Minute),
		SlowCallDuration:      0,
		SlowCallRateThreshold: 0,
		MinFailingNodes:       1,
		RecoveryTimeout:       domain.Duration(time.Minute),
		RecoveryBackoff:       1,
		MaxRecoveryTimeout:    domain.Duration(10 * time.Minute),
		RecoveryJitter:        0,
		HalfOpenMaxCalls:      3,
		SuccessThreshold:      2,
		HalfOpenStuckTimeout:  domain.Duration(time.Minute),
		ManualOverrideTTL:     domain.Duration(90 * time.Minute),
		AutoReplay:            domain.AutoReplayOnClose,
		ReplayRateLimit:       0,
		Tier:                  3, // unconfigured services are tier 3 (seed)
	}, c)
}

func TestConfigJSONUsesSnakeCaseAndDurationStrings(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(domain.DefaultConfig())
	require.NoError(t, err)
	require.JSONEq(t, `{
		"failure_threshold": 5, "failure_rate_threshold": 50, "minimum_calls": 10,
		"window": "1m0s", "slow_call_duration": "0s", "slow_call_rate_threshold": 0,
		"min_failing_nodes": 1, "recovery_timeout": "1m0s", "recovery_backoff": 1,
		"max_recovery_timeout": "10m0s", "recovery_jitter": 0, "half_open_max_calls": 3,
		"success_threshold": 2, "half_open_stuck_timeout": "1m0s",
		"manual_override_ttl": "1h30m0s", "auto_replay": "on_close", "replay_rate_limit": 0, "tier": 3
	}`, string(b))
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(*domain.Config)
		field  string // "" means valid
	}{
		{"defaults", func(*domain.Config) {}, ""},
		{"failure_threshold zero", func(c *domain.Config) { c.FailureThreshold = 0 }, "failure_threshold"},
		{"failure_threshold huge", func(c *domain.Config) { c.FailureThreshold = domain.MaxCountSetting + 1 }, "failure_threshold"},
		{"failure_rate_threshold zero", func(c *domain.Config) { c.FailureRateThreshold = 0 }, "failure_rate_threshold"},
		{"failure_rate_threshold 100", func(c *domain.Config) { c.FailureRateThreshold = 100 }, ""},
		{"failure_rate_threshold above 100", func(c *domain.Config) { c.FailureRateThreshold = 100.5 }, "failure_rate_threshold"},
		{"minimum_calls zero", func(c *domain.Config) { c.MinimumCalls = 0 }, "minimum_calls"},
		{"window below 1s", func(c *domain.Config) { c.Window = domain.Duration(999 * time.Millisecond) }, "window"},
		{"window 1h", func(c *domain.Config) { c.Window = domain.Duration(time.Hour) }, ""},
		{"window above 1h", func(c *domain.Config) { c.Window = domain.Duration(time.Hour + 1) }, "window"},
		{"slow calls on", func(c *domain.Config) {
			c.SlowCallDuration = domain.Duration(2 * time.Second)
			c.SlowCallRateThreshold = 80
		}, ""},
		{"slow_call_duration above 1h", func(c *domain.Config) { c.SlowCallDuration = domain.Duration(2 * time.Hour) }, "slow_call_duration"},
		{"slow_call_rate_threshold above 100", func(c *domain.Config) {
			c.SlowCallDuration = domain.Duration(time.Second)
			c.SlowCallRateThreshold = 101
		}, "slow_call_rate_threshold"},
		{"slow_call_rate_threshold without duration", func(c *domain.Config) { c.SlowCallRateThreshold = 50 }, "slow_call_rate_threshold"},
		{"min_failing_nodes zero", func(c *domain.Config) { c.MinFailingNodes = 0 }, "min_failing_nodes"},
		{"min_failing_nodes above the node cap", func(c *domain.Config) { c.MinFailingNodes = domain.MaxBucketNodes + 1 }, "min_failing_nodes"},
		{"recovery_timeout below 1s", func(c *domain.Config) { c.RecoveryTimeout = domain.Duration(time.Millisecond) }, "recovery_timeout"},
		{"recovery_backoff below 1", func(c *domain.Config) { c.RecoveryBackoff = 0.5 }, "recovery_backoff"},
		{"recovery_backoff 10", func(c *domain.Config) { c.RecoveryBackoff = 10 }, ""},
		{"recovery_backoff above 10", func(c *domain.Config) { c.RecoveryBackoff = 10.1 }, "recovery_backoff"},
		{"max_recovery_timeout below recovery_timeout", func(c *domain.Config) { c.MaxRecoveryTimeout = domain.Duration(30 * time.Second) }, "max_recovery_timeout"},
		{"recovery_jitter negative", func(c *domain.Config) { c.RecoveryJitter = -0.1 }, "recovery_jitter"},
		{"recovery_jitter above 0.5", func(c *domain.Config) { c.RecoveryJitter = 0.6 }, "recovery_jitter"},
		{"half_open_max_calls zero", func(c *domain.Config) { c.HalfOpenMaxCalls = 0 }, "half_open_max_calls"},
		{"success_threshold above half_open_max_calls", func(c *domain.Config) { c.SuccessThreshold = 4 }, "success_threshold"},
		{"half_open_stuck_timeout zero", func(c *domain.Config) { c.HalfOpenStuckTimeout = 0 }, "half_open_stuck_timeout"},
		{"manual_override_ttl above a week", func(c *domain.Config) { c.ManualOverrideTTL = domain.Duration(8 * 24 * time.Hour) }, "manual_override_ttl"},
		{"auto_replay unknown", func(c *domain.Config) { c.AutoReplay = "sometimes" }, "auto_replay"},
		{"auto_replay continuous", func(c *domain.Config) { c.AutoReplay = domain.AutoReplayContinuous }, ""},
		{"replay_rate_limit negative", func(c *domain.Config) { c.ReplayRateLimit = -1 }, "replay_rate_limit"},
		{"tier 0", func(c *domain.Config) { c.Tier = 0 }, "tier"},
		{"tier 4", func(c *domain.Config) { c.Tier = 4 }, "tier"},
		{"tier 1", func(c *domain.Config) { c.Tier = 1 }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := domain.DefaultConfig()
			tt.modify(&c)
			err := c.Validate()
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, domain.ErrInvalidConfig)
			require.Contains(t, err.Error(), tt.field+" is ")
			require.Contains(t, err.Error(), "must be")
		})
	}
}

func TestConfigValidateReportsEveryBadField(t *testing.T) {
	t.Parallel()
	c := domain.DefaultConfig()
	c.FailureThreshold = 0
	c.Window = 0
	c.AutoReplay = ""
	err := c.Validate()
	require.ErrorIs(t, err, domain.ErrInvalidConfig)
	for _, field := range []string{"failure_threshold", "window", "auto_replay"} {
		require.Contains(t, err.Error(), field)
	}
}

func TestResolveConfig(t *testing.T) {
	t.Parallel()
	withDefaults := func(modify func(*domain.Config)) domain.Config {
		c := domain.DefaultConfig()
		modify(&c)
		return c
	}
	tests := []struct {
		name      string
		defaults  string
		service   string
		want      domain.Config
		wantErr   error
		errHas    []string
		errHasNot []string
	}{
		{name: "no layers", want: domain.DefaultConfig()},
		{name: "null and blank layers", defaults: " null ", service: "\n", want: domain.DefaultConfig()},
		{
			name:     "fleet layer overrides built-in",
			defaults: `{"failure_threshold": 8, "window": "30s"}`,
			want: withDefaults(func(c *domain.Config) {
				c.FailureThreshold = 8
				c.Window = domain.Duration(30 * time.Second)
			}),
		},
		{
			name:     "service layer overrides fleet layer, fleet keeps the rest",
			defaults: `{"failure_threshold": 8, "recovery_timeout": "2m", "auto_replay": "continuous"}`,
			service:  `{"failure_threshold": 3, "replay_rate_limit": 25}`,
			want: withDefaults(func(c *domain.Config) {
				c.FailureThreshold = 3
				c.RecoveryTimeout = domain.Duration(2 * time.Minute)
				c.AutoReplay = domain.AutoReplayContinuous
				c.ReplayRateLimit = 25
			}),
		},
		{
			name:    "a null field keeps the layer below",
			service: `{"failure_threshold": null}`,
			want:    domain.DefaultConfig(),
		},
		{
			name:     "unknown fields are named, all of them",
			defaults: `{"failure_treshold": 3, "windw": "1s", "minimum_calls": 4}`,
			wantErr:  domain.ErrUnknownConfigField,
			errHas:   []string{`"failure_treshold"`, `"windw"`, "_defaults"},
		},
		{
			name:    "unknown field in the service layer",
			service: `{"sliding_window_size": 100}`,
			wantErr: domain.ErrUnknownConfigField,
			errHas:  []string{`"sliding_window_size"`, "service"},
		},
		{
			name:    "wrong type names the field",
			service: `{"minimum_calls": "ten"}`,
			wantErr: domain.ErrInvalidConfig,
			errHas:  []string{"minimum_calls"},
		},
		{
			name:    "duration as a number names the field",
			service: `{"window": 60}`,
			wantErr: domain.ErrInvalidConfig,
			errHas:  []string{"window", "duration must be a string"},
		},
		{
			name:     "layer that is not an object",
			defaults: `[1, 2]`,
			wantErr:  domain.ErrInvalidConfig,
			errHas:   []string{"_defaults layer must be a JSON object"},
		},
		{
			name:    "resolved config out of range",
			service: `{"success_threshold": 5}`,
			wantErr: domain.ErrInvalidConfig,
			errHas:  []string{"success_threshold is 5"},
		},
		{
			name:      "a later layer can repair an earlier one",
			defaults:  `{"half_open_max_calls": 1}`,
			service:   `{"half_open_max_calls": 4}`,
			want:      withDefaults(func(c *domain.Config) { c.HalfOpenMaxCalls = 4 }),
			errHasNot: []string{"success_threshold"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.ResolveConfig([]byte(tt.defaults), []byte(tt.service))
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				for _, s := range tt.errHas {
					require.Contains(t, err.Error(), s)
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// TestResolveConfigKnowsEveryField checks the resolver's list of names against
// the struct tags: every field of Config can be set from a layer, and a full
// object reproduces the config it was written from.
func TestResolveConfigKnowsEveryField(t *testing.T) {
	t.Parallel()
	want := domain.DefaultConfig()
	want.SlowCallDuration = domain.Duration(3 * time.Second)
	want.SlowCallRateThreshold = 70
	want.RecoveryBackoff = 2
	want.RecoveryJitter = 0.2
	want.AutoReplay = domain.AutoReplayManual
	full, err := json.Marshal(want)
	require.NoError(t, err)
	got, err := domain.ResolveConfig(nil, full)
	require.NoError(t, err)
	require.Equal(t, want, got)

	var fields map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(full, &fields))
	typ := reflect.TypeFor[domain.Config]()
	require.Len(t, fields, typ.NumField())
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		raw, ok := fields[name]
		require.True(t, ok, "field %s", name)
		_, err := domain.ResolveConfig(nil, []byte(`{"`+name+`": `+string(raw)+`}`))
		require.False(t, errors.Is(err, domain.ErrUnknownConfigField), "field %s: %v", name, err)
	}
}

func TestConfigEffective(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	base := domain.DefaultConfig()
	ft, rate, calls, slow := 12, 80.0, 40, 30.0
	rt := domain.Duration(20 * time.Minute)
	full := domain.ThresholdOverride{FailureThreshold: &ft, FailureRateThreshold: &rate, MinimumCalls: &calls,
		SlowCallRateThreshold: &slow, RecoveryTimeout: &rt}
	onlyThreshold := domain.ThresholdOverride{FailureThreshold: &ft}

	tests := []struct {
		name string
		o    *domain.Override
		want func(*domain.Config)
	}{
		{"nil override", nil, func(*domain.Config) {}},
		{"expired override", &domain.Override{ThresholdOverride: full, ExpiresAt: now}, func(*domain.Config) {}},
		{"active override replaces only its fields", &domain.Override{ThresholdOverride: onlyThreshold, ExpiresAt: now.Add(time.Second)},
			func(c *domain.Config) { c.FailureThreshold = 12 }},
		{"active override with every field; a longer timeout raises the cap", &domain.Override{ThresholdOverride: full, ExpiresAt: now.Add(time.Minute)},
			func(c *domain.Config) {
				c.FailureThreshold = 12
				c.FailureRateThreshold = 80
				c.MinimumCalls = 40
				c.SlowCallRateThreshold = 30
				c.RecoveryTimeout = rt
				c.MaxRecoveryTimeout = rt
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := base
			tt.want(&want)
			require.Equal(t, want, base.Effective(tt.o, now))
		})
	}
}

func TestDefaultThresholdOverrideIsTheSeeds(t *testing.T) {
	t.Parallel()
	o := domain.DefaultConfig().DefaultThresholdOverride()
	require.NotNil(t, o.FailureThreshold)
	require.NotNil(t, o.RecoveryTimeout)
	require.Equal(t, 10, *o.FailureThreshold)
	require.Equal(t, domain.Duration(3*time.Minute), *o.RecoveryTimeout)
	require.Nil(t, o.FailureRateThreshold)
	require.Nil(t, o.MinimumCalls)
	require.Nil(t, o.SlowCallRateThreshold)
}
