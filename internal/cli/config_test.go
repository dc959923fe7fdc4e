package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/cli"
	"github.com/baldurfleet/baldur/internal/opsclient"
	"github.com/baldurfleet/baldur/internal/opsclient/opstest"
)

// configEntry is what `config get --json` prints.
type configEntry struct {
	Key       string          `json:"key"`
	Value     json.RawMessage `json:"value"`
	Revision  uint64          `json:"revision"`
	Effective map[string]any  `json:"effective"`
}

func getConfig(t *testing.T, f *opstest.Fleet, key string) (configEntry, string) {
	t.Helper()
	r := run(t, cmd(f, "config", "get", key, "--json")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	var e configEntry
	r.json(t, &e)
	return e, r.stdout
}

func TestConfigGetJSONFeedsConfigSet(t *testing.T) {
	t.Parallel()
	f := opstest.NewFleet(t)
	r := run(t, cmd(f, "config", "set", "payments", `{"failure_threshold": 8, "recovery_timeout": "45s"}`)...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	before, export := getConfig(t, f, "payments")

	// Change it, then restore the export: the exported value comes back.
	r = run(t, cmd(f, "config", "set", "payments", `{"failure_threshold": 3}`)...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	file := filepath.Join(t.TempDir(), "payments.json")
	require.NoError(t, os.WriteFile(file, []byte(export), 0o600))
	r = run(t, cmd(f, "config", "set", "payments", "--file", file)...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	after, _ := getConfig(t, f, "payments")
	require.JSONEq(t, string(before.Value), string(after.Value))
	require.Equal(t, before.Effective, after.Effective)
	require.Greater(t, after.Revision, before.Revision, "a new revision, by compare-and-set on the current one")

	// The export of one key is not written to another.
	r = run(t, cmd(f, "config", "set", "orders", "--file", file)...)
	require.Equal(t, cli.ExitUsage, r.code, r.stdout)
	require.Contains(t, r.stderr, `the export of "payments", not of "orders"`)
	// An export of a key that was not set holds no value to write.
	_, empty := getConfig(t, f, "orders")
	require.NoError(t, os.WriteFile(file, []byte(empty), 0o600))
	r = run(t, cmd(f, "config", "set", "orders", "--file", file)...)
	require.Equal(t, cli.ExitUsage, r.code, r.stdout)
	require.Contains(t, r.stderr, "holds no value")
	orders, _ := getConfig(t, f, "orders")
	require.Equal(t, "null", string(orders.Value), "nothing written")

	// The fleet settings round-trip as well.
	r = run(t, cmd(f, "config", "set", "_sla", `{"default_hours": 48}`)...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	sla, export := getConfig(t, f, "_sla")
	r = run(t, cmd(f, "config", "set", "_sla", export)...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	again, _ := getConfig(t, f, "_sla")
	require.JSONEq(t, string(sla.Value), string(again.Value))
}

func TestConfigListAndDelete(t *testing.T) {
	t.Parallel()
	f := opstest.NewFleet(t)
	r := run(t, cmd(f, "config", "list", "--json")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.JSONEq(t, "[]", r.stdout, "an empty bucket lists nothing")

	for key, value := range map[string]string{
		"payments": `{"failure_threshold": 8}`, "orders": `{"minimum_calls": 20}`, "_defaults": `{"failure_threshold": 6}`,
	} {
		r = run(t, cmd(f, "config", "set", key, value)...)
		require.Equal(t, cli.ExitOK, r.code, r.stderr)
	}
	r = run(t, cmd(f, "config", "list", "--json")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	var keys []opsclient.ConfigKey
	r.json(t, &keys)
	require.Len(t, keys, 3)
	var names []string
	for _, k := range keys {
		names = append(names, k.Key)
		require.NotZero(t, k.Revision, k.Key)
		require.False(t, k.Updated.IsZero(), k.Key)
		require.Equal(t, k.Key == "_defaults", k.Fleet, k.Key)
	}
	require.Equal(t, []string{"_defaults", "orders", "payments"}, names, "fleet settings first, then services by name")
	payments, _ := getConfig(t, f, "payments")
	require.Equal(t, payments.Revision, keys[2].Revision, "the revision config get shows")

	r = run(t, cmd(f, "config", "list")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Regexp(t, `KEY\s+KIND\s+REVISION\s+UPDATED`, r.stdout)
	require.Regexp(t, `_defaults\s+fleet\s+\d+`, r.stdout)
	require.Regexp(t, `payments\s+service\s+\d+`, r.stdout)

	// A service's key: deleted, the service falls back to _defaults.
	r = run(t, cmd(f, "config", "delete", "payments")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "deleted: payments")
	require.Contains(t, r.stdout, `{"failure_threshold":8}`, "what was stored")
	now, _ := getConfig(t, f, "payments")
	require.Equal(t, "null", string(now.Value))
	require.EqualValues(t, 6, now.Effective["failure_threshold"], "_defaults applies again")
	r = run(t, cmd(f, "config", "list", "--json")...)
	keys = nil
	r.json(t, &keys)
	require.Len(t, keys, 2, "a deleted key is not listed")

	r = run(t, cmd(f, "config", "delete", "payments")...)
	require.Equal(t, cli.ExitFailed, r.code, "nothing to delete: %s", r.stdout)
	require.Contains(t, r.stderr, "not set")
	r = run(t, cmd(f, "config", "delete", "Not A Service!")...)
	require.Equal(t, cli.ExitUsage, r.code, r.stdout)

	// A fleet setting needs --force.
	r = run(t, cmd(f, "config", "delete", "_defaults")...)
	require.Equal(t, cli.ExitUsage, r.code, r.stdout)
	require.Contains(t, r.stderr, "--force")
	d, _ := getConfig(t, f, "_defaults")
	require.NotEqual(t, "null", string(d.Value), "nothing deleted without --force")
	r = run(t, cmd(f, "config", "delete", "_defaults", "--force", "--json")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	var out struct {
		Deleted configEntry `json:"deleted"`
		Now     configEntry `json:"now"`
	}
	r.json(t, &out)
	require.Equal(t, d.Revision, out.Deleted.Revision)
	require.Equal(t, "null", string(out.Now.Value))
	orders, _ := getConfig(t, f, "orders")
	require.NotEqualValues(t, 6, orders.Effective["failure_threshold"], "the built-in default again")
}

func TestCorruptStoredConfigIsNotAUsageError(t *testing.T) {
	t.Parallel()
	f := opstest.NewFleet(t)
	// Written around the validation (the CLI and the admin never would).
	_, err := f.Topology.ConfigKV.Put(t.Context(), "payments", []byte(`{"failure_threshold":-1}`))
	require.NoError(t, err)
	r := run(t, cmd(f, "config", "get", "payments")...)
	require.Equal(t, cli.ExitFailed, r.code, "nothing on the command line is wrong: %s", r.stdout)
	require.Contains(t, r.stderr, "stored value invalid")
	require.NotContains(t, r.stderr, "usage:", "no usage line for a corrupt value")

	// It is still listed and can be deleted, or overwritten with a valid one.
	r = run(t, cmd(f, "config", "list", "--json")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Regexp(t, `"key":\s*"payments"`, r.stdout)
	r = run(t, cmd(f, "config", "set", "payments", `{"failure_threshold": 4}`)...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	r = run(t, cmd(f, "config", "delete", "payments")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
}
