package domain_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
)

func TestSLASettingsDefaults(t *testing.T) {
	t.Parallel()
	s := domain.DefaultSLASettings()
	require.NoError(t, s.Validate())
	for _, d := range domain.FailureDomains {
		require.Equal(t, 24, s.Hours(d))
		require.Equal(t, 24*time.Hour, s.Threshold(d))
	}
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	require.Equal(t, now.Add(-24*time.Hour), s.BreachedBefore(domain.DomainCustom, now))
}

func TestParseSLASettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, raw string
		want      domain.SLASettings
		hours     map[domain.FailureDomain]int
	}{
		{name: "empty object", raw: `{}`, want: domain.DefaultSLASettings()},
		{name: "default only", raw: `{"default_hours":48}`, want: domain.SLASettings{DefaultHours: 48},
			hours: map[domain.FailureDomain]int{domain.DomainNotification: 48}},
		{name: "bounds", raw: `{"default_hours":1,"thresholds_by_domain":{"custom":720}}`,
			want:  domain.SLASettings{DefaultHours: 1, ThresholdsByDomain: map[domain.FailureDomain]int{domain.DomainCustom: 720}},
			hours: map[domain.FailureDomain]int{domain.DomainCustom: 720, domain.DomainAsyncTask: 1}},
		{name: "by domain keeps the default", raw: `{"thresholds_by_domain":{"external_service":4,"notification":72}}`,
			want: domain.SLASettings{DefaultHours: 24, ThresholdsByDomain: map[domain.FailureDomain]int{
				domain.DomainExternalService: 4, domain.DomainNotification: 72}},
			hours: map[domain.FailureDomain]int{domain.DomainExternalService: 4, domain.DomainNotification: 72, domain.DomainDataSync: 24}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.ParseSLASettings([]byte(tc.raw))
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			for d, h := range tc.hours {
				require.Equal(t, h, got.Hours(d), d)
			}
		})
	}
}

func TestParseSLASettingsRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, raw, msg string }{
		{"default zero", `{"default_hours":0}`, "default_hours is 0; want 1..720"},
		{"default too long", `{"default_hours":721}`, "default_hours is 721; want 1..720"},
		{"domain zero", `{"thresholds_by_domain":{"custom":0}}`, "thresholds_by_domain.custom is 0"},
		{"domain too long", `{"thresholds_by_domain":{"data_sync":1000}}`, "thresholds_by_domain.data_sync is 1000"},
		{"unknown domain", `{"thresholds_by_domain":{"payments":4}}`, `names "payments", which is not a failure domain`},
		{"unknown field", `{"default_hour":4}`, "unknown field"},
		{"fraction", `{"default_hours":1.5}`, "cannot unmarshal"},
		{"not an object", `[24]`, "cannot unmarshal"},
		{"trailing", `{} {}`, "trailing data"},
		{"not JSON", `24h`, "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.ParseSLASettings([]byte(tc.raw))
			require.ErrorIs(t, err, domain.ErrInvalidSLA)
			require.ErrorContains(t, err, tc.msg)
			require.Equal(t, domain.DefaultSLASettings(), got, "a refused value yields the defaults")
		})
	}
}
