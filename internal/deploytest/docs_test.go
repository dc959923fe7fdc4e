package deploytest

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/events"
)

// readDoc returns a file of docs/.
func readDoc(t *testing.T, name string) string {
	t.Helper()
	raw, err := os.ReadFile(path("docs", name))
	require.NoError(t, err)
	return string(raw)
}

// jsonFields returns the JSON names of the fields of struct v.
func jsonFields(v any) []string {
	var out []string
	rt := reflect.TypeOf(v)
	for i := range rt.NumField() {
		f := rt.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

func TestConfigurationDocNamesEveryFlagAndVariable(t *testing.T) {
	t.Parallel()
	doc := readDoc(t, "configuration.md")
	for key, s := range binarySpecs(t) {
		for f := range s.flags {
			require.True(t, strings.Contains(doc, "`--"+f+"`"), "docs/configuration.md does not name flag --%s of %s", f, key)
		}
		for e := range s.envs {
			require.True(t, strings.Contains(doc, "`"+e+"`"), "docs/configuration.md does not name variable %s of %s", e, key)
		}
	}
	for _, v := range natsConfVars(t) {
		require.True(t, strings.Contains(doc, "`"+v+"`"), "docs/configuration.md does not name variable %s of deploy/nats", v)
	}
}

func TestConfigurationDocNamesEveryConfigField(t *testing.T) {
	t.Parallel()
	doc := readDoc(t, "configuration.md")
	groups := map[string][]string{
		"domain.Config":      jsonFields(domain.Config{}),
		"domain.SLASettings": jsonFields(domain.SLASettings{}),
		"domain.CellsConfig": jsonFields(domain.CellsConfig{}),
		"domain.Cell":        jsonFields(domain.Cell{}),
		"config keys":        {domain.ConfigDefaultsKey, domain.SLAConfigKey, domain.ConfigCellsKey},
		"governance state":   jsonFields(domain.Governance{}),
		"kill switch":        jsonFields(domain.KillSwitchState{}),
		"emergency level":    jsonFields(domain.EmergencyState{}),
		"error budget":       jsonFields(domain.ErrorBudget{}),
		"aggregate failure":  jsonFields(domain.FleetAggregate{}),
		"governance keys":    append(governanceKeys(), domain.GovernanceKeyAggregate),
	}
	for group, fields := range groups {
		require.NotEmpty(t, fields, group)
		for _, f := range fields {
			require.True(t, strings.Contains(doc, "`"+f+"`"), "docs/configuration.md does not name the %s field %q", group, f)
		}
	}
	def := domain.DefaultConfig()
	for name, v := range map[string]any{
		"failure_threshold":   def.FailureThreshold,
		"minimum_calls":       def.MinimumCalls,
		"half_open_max_calls": def.HalfOpenMaxCalls,
		"success_threshold":   def.SuccessThreshold,
		"auto_replay":         def.AutoReplay,
	} {
		row := "| `" + name + "` | `" + fmt.Sprint(v) + "`"
		require.True(t, strings.Contains(doc, row), "docs/configuration.md does not give %v as the default of %s", v, name)
	}
}

func governanceKeys() []string {
	out := make([]string, len(events.GovernanceKeys))
	for i, k := range events.GovernanceKeys {
		out[i] = string(k)
	}
	return out
}
