package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// SLAConfigKey is the key of the SLA settings in the KV bucket baldur_config.
const SLAConfigKey = "_sla"

// SLA settings bounds and default (the seed's get_sla_thresholds()).
const (
	DefaultSLAHours = 24
	MinSLAHours     = 1
	MaxSLAHours     = 720
)

// ErrInvalidSLA reports SLA settings that are malformed or out of range.
var ErrInvalidSLA = errors.New("invalid SLA settings")

// SLASettings say how long a dead letter may stay pending before it breaches
// its SLA: DefaultHours for every failure domain, unless ThresholdsByDomain
// names the domain. The watchdog reads them live from baldur_config key
// "_sla".
type SLASettings struct {
	// DefaultHours applies to domains without their own threshold, 1–720.
	DefaultHours int `json:"default_hours"`
	// ThresholdsByDomain overrides DefaultHours per failure domain, 1–720.
	ThresholdsByDomain map[FailureDomain]int `json:"thresholds_by_domain,omitempty"`
}

// DefaultSLASettings returns the seed's settings: 24 hours for every domain.
func DefaultSLASettings() SLASettings { return SLASettings{DefaultHours: DefaultSLAHours} }

// Validate returns an error naming every out-of-range hour count and every
// unknown domain; it wraps ErrInvalidSLA.
func (s SLASettings) Validate() error {
	var errs []error
	if s.DefaultHours < MinSLAHours || s.DefaultHours > MaxSLAHours {
		errs = append(errs, fmt.Errorf("%w: default_hours is %d; want %d..%d", ErrInvalidSLA, s.DefaultHours, MinSLAHours, MaxSLAHours))
	}
	for _, d := range slices.Sorted(maps.Keys(s.ThresholdsByDomain)) {
		h := s.ThresholdsByDomain[d]
		if !slices.Contains(FailureDomains, d) {
			errs = append(errs, fmt.Errorf("%w: thresholds_by_domain names %q, which is not a failure domain", ErrInvalidSLA, d))
			continue
		}
		if h < MinSLAHours || h > MaxSLAHours {
			errs = append(errs, fmt.Errorf("%w: thresholds_by_domain.%s is %d; want %d..%d", ErrInvalidSLA, d, h, MinSLAHours, MaxSLAHours))
		}
	}
	return errors.Join(errs...)
}

// Hours returns the SLA of failure domain d in hours.
func (s SLASettings) Hours(d FailureDomain) int {
	if h, ok := s.ThresholdsByDomain[d]; ok {
		return h
	}
	return s.DefaultHours
}

// Threshold returns the SLA of failure domain d.
func (s SLASettings) Threshold(d FailureDomain) time.Duration {
	return time.Duration(s.Hours(d)) * time.Hour
}

// BreachedBefore returns the creation time at or before which a pending entry
// of domain d has breached its SLA at now.
func (s SLASettings) BreachedBefore(d FailureDomain, now time.Time) time.Time {
	return now.Add(-s.Threshold(d))
}

// ParseSLASettings decodes and validates the value of key "_sla". A field it
// leaves out keeps its default (default_hours 24); unknown fields, a value
// that is not an object and out-of-range hours are refused with an error
// wrapping ErrInvalidSLA.
func ParseSLASettings(raw []byte) (SLASettings, error) {
	s := DefaultSLASettings()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return DefaultSLASettings(), fmt.Errorf("%w: %v", ErrInvalidSLA, err)
	}
	if dec.More() {
		return DefaultSLASettings(), fmt.Errorf("%w: trailing data after the object", ErrInvalidSLA)
	}
	if err := s.Validate(); err != nil {
		return DefaultSLASettings(), err
	}
	return s, nil
}
