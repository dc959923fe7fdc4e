package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// AutoReplay says when the replay-worker drains a service's dead letters.
type AutoReplay string

// Auto-replay policies (DESIGN §5).
const (
	// AutoReplayOnClose replays the backlog when the breaker closes with
	// trigger_replay (the seed's behaviour, the default).
	AutoReplayOnClose AutoReplay = "on_close"
	// AutoReplayContinuous also drains due entries while the breaker is CLOSED.
	AutoReplayContinuous AutoReplay = "continuous"
	// AutoReplayManual turns automatic replay off: only operators replay.
	AutoReplayManual AutoReplay = "manual"
)

// AutoReplays lists every auto-replay policy.
var AutoReplays = []AutoReplay{AutoReplayOnClose, AutoReplayContinuous, AutoReplayManual}

// Valid reports whether a is a known auto-replay policy.
func (a AutoReplay) Valid() bool { return slices.Contains(AutoReplays, a) }

// Seed limits of threshold overrides (the seed's mesh coordinator).
const (
	// OverrideDefaultTTL is how long an override lasts when its command names no
	// ttl.
	OverrideDefaultTTL = 600 * time.Second
	// MaxOverrideRenewals is how many times an active override may be renewed
	// (replaced before it expires) before further overrides are refused.
	MaxOverrideRenewals = 3
	// MaxConcurrentOverrides is the fleet-wide number of services that may have
	// an active override at once. It cannot be checked by the per-breaker fold:
	// the breaker-worker counts active overrides across baldur_breakers and
	// refuses the command before folding it.
	MaxConcurrentOverrides = 20
	// OverrideThresholdFactor multiplies failure_threshold in an override
	// command that names no field.
	OverrideThresholdFactor = 2
	// OverrideTimeoutFactor multiplies recovery_timeout in an override command
	// that names no field.
	OverrideTimeoutFactor = 3
)

// Config is one breaker's configuration (DESIGN §4), plus the per-service replay
// settings the replay-worker reads from the same bucket. It is the value of the
// keys "_defaults" and "<svc>" in baldur_config; an object there names only the
// fields it overrides (see ResolveConfig). Rates are percentages.
type Config struct {
	// FailureThreshold is the number of consecutive failures that trips.
	FailureThreshold int `json:"failure_threshold"`
	// FailureRateThreshold is the failure rate over the window, in percent,
	// that trips.
	FailureRateThreshold float64 `json:"failure_rate_threshold"`
	// MinimumCalls is the number of calls the window must hold before anything
	// trips.
	MinimumCalls int `json:"minimum_calls"`
	// Window is the span of the sliding window, split into WindowBuckets
	// buckets.
	Window Duration `json:"window"`
	// SlowCallDuration is how long a call must take to count as slow; the SDK
	// classifies calls with it. 0 turns slow-call detection off.
	SlowCallDuration Duration `json:"slow_call_duration"`
	// SlowCallRateThreshold is the slow-call rate over the window, in percent,
	// that trips. 0 turns the slow-call rule off.
	SlowCallRateThreshold float64 `json:"slow_call_rate_threshold"`
	// MinFailingNodes is the number of distinct reporting nodes that must have
	// seen failures (or slow calls) in the window for the breaker to trip.
	MinFailingNodes int `json:"min_failing_nodes"`
	// RecoveryTimeout is how long a breaker stays OPEN before it may probe.
	RecoveryTimeout Duration `json:"recovery_timeout"`
	// RecoveryBackoff multiplies the recovery timeout on each re-open from
	// HALF_OPEN. 1 keeps it constant (the seed).
	RecoveryBackoff float64 `json:"recovery_backoff"`
	// MaxRecoveryTimeout caps the backed-off recovery timeout.
	MaxRecoveryTimeout Duration `json:"max_recovery_timeout"`
	// RecoveryJitter is the fraction of a backed-off recovery timeout that may
	// be taken off it, deterministically per service and generation. 0 is
	// seed-exact.
	RecoveryJitter float64 `json:"recovery_jitter"`
	// HalfOpenMaxCalls is the number of probes admitted fleet-wide per
	// half-open period.
	HalfOpenMaxCalls int `json:"half_open_max_calls"`
	// SuccessThreshold is the number of probe successes that close.
	SuccessThreshold int `json:"success_threshold"`
	// HalfOpenStuckTimeout is the age after which a full half-open window is
	// reset.
	HalfOpenStuckTimeout Duration `json:"half_open_stuck_timeout"`
	// ManualOverrideTTL is how long a manual open or close lasts when its
	// command names no ttl.
	ManualOverrideTTL Duration `json:"manual_override_ttl"`
	// AutoReplay says when the replay-worker drains the service's backlog.
	AutoReplay AutoReplay `json:"auto_replay"`
	// ReplayRateLimit is the maximum replays per second for the service; 0 is
	// unlimited.
	ReplayRateLimit float64 `json:"replay_rate_limit"`
	// Tier is how critical the service is, 1 (most) to 3 (least): under an
	// emergency level the SDK admits calls by tier (EmergencyLevel
	// TierAdmission: LEVEL_1 stops tier 3, LEVEL_2 tiers 2 and 3, LEVEL_3
	// also halves tier 1). Unconfigured services are tier 3, as in the seed.
	Tier int `json:"tier"`
}

// DefaultConfig returns the built-in defaults: the seed's values, slow-call
// detection off, one failing node enough to trip, no backoff and no jitter,
// replay on close without a rate limit.
func DefaultConfig() Config {
	return Config{
		FailureThreshold:      5,
		FailureRateThreshold:  50,
		MinimumCalls:          10,
		Window:                Duration(60 * time.Second),
		SlowCallDuration:      0,
		SlowCallRateThreshold: 0,
		MinFailingNodes:       1,
		RecoveryTimeout:       Duration(60 * time.Second),
		RecoveryBackoff:       1.0,
		MaxRecoveryTimeout:    Duration(10 * time.Minute),
		RecoveryJitter:        0,
		HalfOpenMaxCalls:      3,
		SuccessThreshold:      2,
		HalfOpenStuckTimeout:  Duration(60 * time.Second),
		ManualOverrideTTL:     Duration(90 * time.Minute),
		AutoReplay:            AutoReplayOnClose,
		ReplayRateLimit:       0,
		Tier:                  3,
	}
}

// Allowed ranges of the Config fields, checked by Validate.
const (
	// MaxCountSetting bounds failure_threshold and minimum_calls.
	MaxCountSetting = 1_000_000
	// MaxHalfOpenMaxCalls bounds half_open_max_calls (and success_threshold).
	MaxHalfOpenMaxCalls = 1000
	// MinWindow and MaxWindow bound window.
	MinWindow = time.Second
	// MaxWindow is the largest window.
	MaxWindow = time.Hour
	// MaxSlowCallDuration bounds slow_call_duration.
	MaxSlowCallDuration = time.Hour
	// MinTimeoutSetting is the smallest recovery_timeout,
	// max_recovery_timeout, half_open_stuck_timeout and manual_override_ttl.
	MinTimeoutSetting = time.Second
	// MaxTimeoutSetting bounds recovery_timeout, max_recovery_timeout and
	// half_open_stuck_timeout.
	MaxTimeoutSetting = 24 * time.Hour
	// MaxManualOverrideTTL bounds manual_override_ttl.
	MaxManualOverrideTTL = 7 * 24 * time.Hour
	// MaxRecoveryBackoff bounds recovery_backoff.
	MaxRecoveryBackoff = 10.0
	// MaxRecoveryJitter bounds recovery_jitter.
	MaxRecoveryJitter = 0.5
	// MaxReplayRateLimit bounds replay_rate_limit.
	MaxReplayRateLimit = 100_000.0
)

// Validate checks every field against its allowed range and returns all
// problems joined, each wrapping ErrInvalidConfig and naming the field:
//
//	failure_threshold         integer in [1, 1000000]
//	failure_rate_threshold    percent in (0, 100]
//	minimum_calls             integer in [1, 1000000]
//	window                    duration in [1s, 1h]
//	slow_call_duration        0 (off) or duration in (0, 1h]
//	slow_call_rate_threshold  0 (off) or percent in (0, 100]; needs slow_call_duration > 0
//	min_failing_nodes         integer in [1, MaxBucketNodes]
//	recovery_timeout          duration in [1s, 24h]
//	recovery_backoff          factor in [1, 10]
//	max_recovery_timeout      duration in [recovery_timeout, 24h]
//	recovery_jitter           fraction in [0, 0.5]
//	half_open_max_calls       integer in [1, 1000]
//	success_threshold         integer in [1, half_open_max_calls]
//	half_open_stuck_timeout   duration in [1s, 24h]
//	manual_override_ttl       duration in [1s, 168h]
//	auto_replay               on_close, continuous or manual
//	replay_rate_limit         per second in [0, 100000]; 0 is unlimited
//	tier                      1, 2 or 3 (1 is the most critical)
func (c Config) Validate() error {
	var errs []error
	bad := func(field string, value any, rule string) {
		errs = append(errs, fmt.Errorf("%w: %s is %v, must be %s", ErrInvalidConfig, field, value, rule))
	}
	intIn := func(field string, v, lo, hi int) {
		if v < lo || v > hi {
			bad(field, v, fmt.Sprintf("between %d and %d", lo, hi))
		}
	}
	durIn := func(field string, v Duration, lo, hi time.Duration) {
		if v.D() < lo || v.D() > hi {
			bad(field, v, fmt.Sprintf("between %s and %s", lo, hi))
		}
	}
	percent := func(field string, v float64, offAllowed bool) {
		if offAllowed && v == 0 {
			return
		}
		if math.IsNaN(v) || v <= 0 || v > 100 {
			rule := "a percentage in (0, 100]"
			if offAllowed {
				rule = "0 (off) or a percentage in (0, 100]"
			}
			bad(field, v, rule)
		}
	}
	floatIn := func(field string, v, lo, hi float64) {
		if math.IsNaN(v) || v < lo || v > hi {
			bad(field, v, fmt.Sprintf("between %g and %g", lo, hi))
		}
	}

	intIn("failure_threshold", c.FailureThreshold, 1, MaxCountSetting)
	percent("failure_rate_threshold", c.FailureRateThreshold, false)
	intIn("minimum_calls", c.MinimumCalls, 1, MaxCountSetting)
	durIn("window", c.Window, MinWindow, MaxWindow)
	if c.SlowCallDuration != 0 {
		durIn("slow_call_duration", c.SlowCallDuration, time.Nanosecond, MaxSlowCallDuration)
	}
	percent("slow_call_rate_threshold", c.SlowCallRateThreshold, true)
	if c.SlowCallRateThreshold > 0 && c.SlowCallDuration == 0 {
		bad("slow_call_rate_threshold", c.SlowCallRateThreshold,
			"0 while slow_call_duration is 0 (no call is ever classified slow)")
	}
	intIn("min_failing_nodes", c.MinFailingNodes, 1, MaxBucketNodes)
	durIn("recovery_timeout", c.RecoveryTimeout, MinTimeoutSetting, MaxTimeoutSetting)
	floatIn("recovery_backoff", c.RecoveryBackoff, 1, MaxRecoveryBackoff)
	durIn("max_recovery_timeout", c.MaxRecoveryTimeout, max(MinTimeoutSetting, c.RecoveryTimeout.D()), MaxTimeoutSetting)
	floatIn("recovery_jitter", c.RecoveryJitter, 0, MaxRecoveryJitter)
	intIn("half_open_max_calls", c.HalfOpenMaxCalls, 1, MaxHalfOpenMaxCalls)
	intIn("success_threshold", c.SuccessThreshold, 1, max(1, min(c.HalfOpenMaxCalls, MaxHalfOpenMaxCalls)))
	durIn("half_open_stuck_timeout", c.HalfOpenStuckTimeout, MinTimeoutSetting, MaxTimeoutSetting)
	durIn("manual_override_ttl", c.ManualOverrideTTL, MinTimeoutSetting, MaxManualOverrideTTL)
	if !c.AutoReplay.Valid() {
		bad("auto_replay", fmt.Sprintf("%q", c.AutoReplay), "one of on_close, continuous, manual")
	}
	floatIn("replay_rate_limit", c.ReplayRateLimit, 0, MaxReplayRateLimit)
	intIn("tier", c.Tier, 1, 3)
	return errors.Join(errs...)
}

// configField is one JSON name of Config and the field it decodes into.
type configField struct {
	name string
	ptr  func(*Config) any
}

// configFields maps each JSON name of Config to the field it decodes into. It is
// the resolver's list of known names; a test checks it against the struct tags.
var configFields = []configField{
	{"failure_threshold", func(c *Config) any { return &c.FailureThreshold }},
	{"failure_rate_threshold", func(c *Config) any { return &c.FailureRateThreshold }},
	{"minimum_calls", func(c *Config) any { return &c.MinimumCalls }},
	{"window", func(c *Config) any { return &c.Window }},
	{"slow_call_duration", func(c *Config) any { return &c.SlowCallDuration }},
	{"slow_call_rate_threshold", func(c *Config) any { return &c.SlowCallRateThreshold }},
	{"min_failing_nodes", func(c *Config) any { return &c.MinFailingNodes }},
	{"recovery_timeout", func(c *Config) any { return &c.RecoveryTimeout }},
	{"recovery_backoff", func(c *Config) any { return &c.RecoveryBackoff }},
	{"max_recovery_timeout", func(c *Config) any { return &c.MaxRecoveryTimeout }},
	{"recovery_jitter", func(c *Config) any { return &c.RecoveryJitter }},
	{"half_open_max_calls", func(c *Config) any { return &c.HalfOpenMaxCalls }},
	{"success_threshold", func(c *Config) any { return &c.SuccessThreshold }},
	{"half_open_stuck_timeout", func(c *Config) any { return &c.HalfOpenStuckTimeout }},
	{"manual_override_ttl", func(c *Config) any { return &c.ManualOverrideTTL }},
	{"auto_replay", func(c *Config) any { return &c.AutoReplay }},
	{"replay_rate_limit", func(c *Config) any { return &c.ReplayRateLimit }},
	{"tier", func(c *Config) any { return &c.Tier }},
}

// ConfigDefaultsKey is the key of the fleet-wide layer in baldur_config.
const ConfigDefaultsKey = "_defaults"

// ResolveConfig layers a breaker's configuration: the built-in DefaultConfig,
// then the fleet-wide object (value of "_defaults" in baldur_config), then the
// service's object (value of "<svc>"). Each object names only the fields it
// overrides; an empty or missing layer (nil, whitespace or JSON null) is
// skipped. A layer that is not a JSON object, holds a value of the wrong type,
// or names a field Config does not have is refused with an error naming the
// layer and the fields (ErrInvalidConfig, ErrUnknownConfigField). The
// resolved config is validated (Validate); it is returned even when invalid, so
// the caller can show it next to the error.
func ResolveConfig(defaults, service []byte) (Config, error) {
	c := DefaultConfig()
	if err := c.overlay(ConfigDefaultsKey, defaults); err != nil {
		return c, err
	}
	if err := c.overlay("service", service); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// overlay decodes one layer onto c.
func (c *Config) overlay(layer string, raw []byte) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return fmt.Errorf("%w: %s layer must be a JSON object: %w", ErrInvalidConfig, layer, err)
	}
	var unknown []string
	for name := range obj {
		if !slices.ContainsFunc(configFields, func(f configField) bool { return f.name == name }) {
			unknown = append(unknown, fmt.Sprintf("%q", name))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return fmt.Errorf("%w: %s layer names %s", ErrUnknownConfigField, layer, strings.Join(unknown, ", "))
	}
	next := *c
	var errs []error
	for _, f := range configFields {
		v, ok := obj[f.name]
		if !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			continue
		}
		if err := json.Unmarshal(v, f.ptr(&next)); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s layer: %s: %w", ErrInvalidConfig, layer, f.name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	*c = next
	return nil
}

// Effective returns c with the fields of an unexpired override replaced (the
// seed's get_effective_config). A nil override, or one whose expires_at is not
// after now, leaves c unchanged.
func (c Config) Effective(o *Override, now time.Time) Config {
	if !o.Active(now) {
		return c
	}
	return c.with(o.ThresholdOverride)
}

// with returns c with every non-nil field of t replaced. A recovery_timeout
// above max_recovery_timeout raises max_recovery_timeout to it.
func (c Config) with(t ThresholdOverride) Config {
	if t.FailureThreshold != nil {
		c.FailureThreshold = *t.FailureThreshold
	}
	if t.FailureRateThreshold != nil {
		c.FailureRateThreshold = *t.FailureRateThreshold
	}
	if t.MinimumCalls != nil {
		c.MinimumCalls = *t.MinimumCalls
	}
	if t.SlowCallRateThreshold != nil {
		c.SlowCallRateThreshold = *t.SlowCallRateThreshold
	}
	if t.RecoveryTimeout != nil {
		c.RecoveryTimeout = *t.RecoveryTimeout
		// An overridden timeout above the cap raises the cap: the override
		// (×3 by default) must not be cut back by max_recovery_timeout.
		c.MaxRecoveryTimeout = max(c.MaxRecoveryTimeout, c.RecoveryTimeout)
	}
	return c
}

// DefaultThresholdOverride is the override the seed's mesh coordinator applies
// when it names no value: failure_threshold × OverrideThresholdFactor and
// recovery_timeout × OverrideTimeoutFactor of c.
func (c Config) DefaultThresholdOverride() ThresholdOverride {
	ft := c.FailureThreshold * OverrideThresholdFactor
	rt := Duration(c.RecoveryTimeout.D() * OverrideTimeoutFactor)
	return ThresholdOverride{FailureThreshold: &ft, RecoveryTimeout: &rt}
}
