package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/cli"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/opsclient"
	"github.com/baldurfleet/baldur/internal/opsclient/opstest"
	"github.com/baldurfleet/baldur/internal/replay"
)

// result is one run of the CLI.
type result struct {
	code           int
	stdout, stderr string
}

// run runs the CLI with args and no environment.
func run(t *testing.T, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.RunEnv(context.Background(), args, &out, &errOut, func(string) string { return "" })
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// fleetArgs returns the flags that point the CLI at f.
func fleetArgs(f *opstest.Fleet, extra ...string) []string {
	return append([]string{"--nats-url", f.URL, "--actor", "sre"}, extra...)
}

func (r result) json(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal([]byte(r.stdout), v), "stdout: %s\nstderr: %s", r.stdout, r.stderr)
}

func cmd(f *opstest.Fleet, args ...string) []string {
	// args: noun verb [positional...]; flags after
	return append(args, fleetArgs(f)...)
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no arguments", nil, cli.ExitUsage, "Usage: baldur"},
		{"unknown command", []string{"nope"}, cli.ExitUsage, `unknown command "nope"`},
		{"unknown verb", []string{"breaker", "explode"}, cli.ExitUsage, `unknown command "breaker explode"`},
		{"unknown flag", []string{"breaker", "list", "--bogus"}, cli.ExitUsage, "flag provided but not defined"},
		{"missing service", []string{"breaker", "open", "--reason", "x"}, cli.ExitUsage, "missing argument SERVICE"},
		{"missing reason", []string{"breaker", "open", "payments"}, cli.ExitUsage, "--reason is required"},
		{"extra argument", []string{"breaker", "get", "a", "b"}, cli.ExitUsage, `unexpected argument "b"`},
		{"bad kill switch", []string{"governance", "kill-switch", "maybe", "--reason", "x", "--nats-url", "nats://127.0.0.1:1"}, cli.ExitUsage, "want on or off"},
		{"audit needs a database", []string{"audit", "list"}, cli.ExitUsage, "--database-url"},
		{"unreachable NATS", []string{"breaker", "list", "--nats-url", "nats://127.0.0.1:1", "--timeout", "1s"}, cli.ExitUnreachable, "unreachable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, tc.args...)
			require.Equal(t, tc.code, r.code, "stderr: %s", r.stderr)
			require.Contains(t, r.stderr, tc.want)
		})
	}
}

func TestHelpEverywhere(t *testing.T) {
	t.Parallel()
	r := run(t, "help")
	require.Equal(t, cli.ExitOK, r.code)
	require.Contains(t, r.stdout, "Exit codes:")
	for _, args := range [][]string{
		{"breaker", "--help"}, {"breaker", "open", "--help"}, {"dlq", "replay-batch", "-h"},
		{"governance", "kill-switch", "--help"}, {"audit", "verify", "--help"}, {"config", "set", "--help"}, {"admin", "--help"},
	} {
		r := run(t, args...)
		require.Equal(t, cli.ExitOK, r.code, "%v: %s", args, r.stderr)
		require.Contains(t, r.stdout, "Usage: baldur "+args[0], "%v", args)
		if len(args) == 3 || args[0] == "admin" {
			require.Contains(t, r.stdout, "Examples:", "%v", args)
		}
	}
}

func TestFleetWithoutTopologyIsUnreachable(t *testing.T) {
	t.Parallel()
	r := run(t, "breaker", "list", "--nats-url", bareServer(t))
	require.Equal(t, cli.ExitUnreachable, r.code, r.stderr)
	require.Contains(t, r.stderr, "baldur_breakers")
}

func TestBreakerCommandsEndToEnd(t *testing.T) {
	t.Parallel()
	f := opstest.NewFleet(t)
	f.StartBreakerWorker(t, "w1")

	r := run(t, cmd(f, "breaker", "open", "payments", "--reason", "INC-4711: bank down", "--ttl", "30m")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "applied: open payments by sre")
	require.Regexp(t, `state\s+open`, r.stdout)
	require.Regexp(t, `mode\s+forced_open \(by sre: INC-4711: bank down`, r.stdout)

	r = run(t, cmd(f, "breaker", "list")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Regexp(t, `SERVICE\s+STATE\s+MODE`, r.stdout)
	require.Regexp(t, `payments\s+open\s+forced_open`, r.stdout)

	r = run(t, cmd(f, "breaker", "close", "payments", "--reason", "bank back", "--json")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	var applied opsclient.Applied
	r.json(t, &applied)
	require.Equal(t, domain.StateClosed, applied.Breaker.State)
	require.Equal(t, applied.CommandID, applied.Breaker.LastCommandID)

	r = run(t, cmd(f, "breaker", "auto", "payments", "--reason", "over")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Regexp(t, `mode\s+auto`, r.stdout)
	r = run(t, cmd(f, "breaker", "auto", "payments", "--reason", "again")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "no change")

	r = run(t, cmd(f, "breaker", "override", "payments", "--reason", "failover", "--failure-threshold", "10", "--recovery-timeout", "3m")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "failure_threshold=10 recovery_timeout=3m0s")
	r = run(t, cmd(f, "breaker", "clear-override", "payments", "--reason", "done")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	r = run(t, cmd(f, "breaker", "metrics-only", "payments", "--reason", "tuning")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	r = run(t, cmd(f, "breaker", "disable", "payments", "--reason", "load test")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Regexp(t, `mode\s+disabled`, r.stdout)

	r = run(t, cmd(f, "breaker", "get", "payments", "--json")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	var b domain.Breaker
	r.json(t, &b)
	require.Equal(t, domain.ModeDisabled, b.Mode)

	r = run(t, cmd(f, "breaker", "get", "nobody")...)
	require.Equal(t, cli.ExitFailed, r.code)
	require.Contains(t, r.stderr, "no breaker for service")
}

func TestKillSwitchRefusesThenOverride(t *testing.T) {
	t.Parallel()
	f := opstest.NewFleet(t)
	f.StartBreakerWorker(t, "w1")

	r := run(t, cmd(f, "governance", "kill-switch", "on", "--reason", "INC-9: replay storm")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "applied: kill switch on by sre")
	require.Regexp(t, `kill switch\s+ON \(by sre: INC-9: replay storm`, r.stdout)

	r = run(t, cmd(f, "breaker", "open", "orders", "--reason", "try")...)
	require.Equal(t, cli.ExitFailed, r.code, r.stdout)
	require.Contains(t, r.stderr, "refused (kill_switch_on)")
	require.Contains(t, r.stderr, "kill switch is on")

	r = run(t, cmd(f, "breaker", "open", "orders", "--reason", "try", "--json")...)
	require.Equal(t, cli.ExitFailed, r.code)
	var jerr struct {
		Error    string                  `json:"error"`
		ExitCode int                     `json:"exit_code"`
		Refused  *opsclient.RefusedError `json:"refused"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stderr), &jerr), r.stderr)
	require.Equal(t, "kill_switch_on", jerr.Refused.Code)
	require.Equal(t, cli.ExitFailed, jerr.ExitCode)

	r = run(t, cmd(f, "breaker", "open", "orders", "--reason", "must", "--override-kill-switch")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Regexp(t, `state\s+open`, r.stdout)

	r = run(t, cmd(f, "governance", "emergency", "LEVEL_2", "--reason", "INC-9")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	r = run(t, cmd(f, "governance", "slo-target", "0.999", "--window", "720h", "--reason", "objective")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)

	r = run(t, cmd(f, "governance", "status")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Regexp(t, `emergency level\s+2 LEVEL_2`, r.stdout)
	require.Contains(t, r.stdout, "of SLO 0.999 over 720h0m0s")
	r = run(t, cmd(f, "governance", "status", "--json")...)
	var st opsclient.GovernanceStatus
	r.json(t, &st)
	require.True(t, st.KillSwitch.Active)
	require.Equal(t, domain.EmergencyLevel2, st.Emergency.Level)

	r = run(t, cmd(f, "governance", "kill-switch", "off", "--reason", "resolved")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Regexp(t, `kill switch\s+off`, r.stdout)
}

func TestCommandNotAppliedWithoutWorker(t *testing.T) {
	t.Parallel()
	f := opstest.NewFleet(t)
	r := run(t, cmd(f, "breaker", "open", "payments", "--reason", "x", "--timeout", "300ms")...)
	require.Equal(t, cli.ExitFailed, r.code)
	require.Contains(t, r.stderr, "no breaker-worker applied the command")
}

func TestConfigSetAndGet(t *testing.T) {
	t.Parallel()
	f := opstest.NewFleet(t)

	r := run(t, cmd(f, "config", "set", "payments", `{"failure_threshold": 0}`)...)
	require.Equal(t, cli.ExitUsage, r.code)
	require.Contains(t, r.stderr, "refused, nothing written")
	r = run(t, cmd(f, "config", "get", "payments", "--json")...)
	var e struct {
		Value    json.RawMessage `json:"value"`
		Revision uint64          `json:"revision"`
	}
	r.json(t, &e)
	require.Equal(t, "null", string(e.Value), "the invalid value was not written")

	r = run(t, cmd(f, "config", "set", "payments", `{"failure_threshold": 8}`)...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "written: payments")
	r = run(t, cmd(f, "config", "get", "payments")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, `"failure_threshold": 8`)
}

func TestDLQAndAuditEndToEnd(t *testing.T) {
	t.Parallel()
	f := opstest.NewFleet(t)
	f.StartBreakerWorker(t, "w1")
	rw := f.StartReplayWorker(t, "r1")
	svc := f.ServeReplay(t, "ledger", true)
	ids := []string{
		f.DeadLetter(t, rw, "ledger", "bank timeout 1"),
		f.DeadLetter(t, rw, "ledger", "bank timeout 2"),
		f.DeadLetter(t, rw, "ledger", "bank timeout 3"),
		f.DeadLetter(t, rw, "ledger", "bank timeout 4"),
	}

	r := run(t, cmd(f, "dlq", "list", "--service", "ledger")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Regexp(t, `ID\s+SERVICE\s+STATUS`, r.stdout)
	require.Equal(t, 5, strings.Count(r.stdout, "\n"), r.stdout)
	r = run(t, cmd(f, "dlq", "list", "--json")...)
	var list replay.DLQListReply
	r.json(t, &list)
	require.Len(t, list.Entries, 4)

	r = run(t, cmd(f, "dlq", "show", ids[0])...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "bank timeout 1")

	r = run(t, cmd(f, "dlq", "replay", ids[0], "--reason", "customer asked")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr+r.stdout)
	require.Contains(t, r.stdout, "1 replayed")
	require.Equal(t, int64(1), svc.Delivered())

	r = run(t, cmd(f, "dlq", "replay-batch", "--service", "ledger", "--dry-run", "--reason", "how many")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "dry run: 3 entries match")
	require.Equal(t, int64(1), svc.Delivered(), "a dry run delivers nothing")

	r = run(t, cmd(f, "dlq", "discard", ids[1], "--reason", "duplicate", "--note", "refunded")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "discarded "+ids[1]+": rejected")
	r = run(t, cmd(f, "dlq", "resolve", ids[2], "--reason", "fixed by hand")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "resolved "+ids[2]+": resolved")
	r = run(t, cmd(f, "dlq", "requeue", ids[3], "--reason", "again")...)
	require.Equal(t, cli.ExitFailed, r.code, "a pending entry cannot be requeued: %s", r.stdout)
	require.Contains(t, r.stderr, "409")
	r = run(t, cmd(f, "dlq", "show", "0b9d5f7e-3c1a-4e2b-9f60-7a8b1c2d3e4f")...)
	require.Equal(t, cli.ExitFailed, r.code)
	require.Contains(t, r.stderr, "404")

	r = run(t, cmd(f, "dlq", "replay-batch", "--service", "ledger", "--reason", "drain")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr+r.stdout)
	require.Contains(t, r.stdout, "replayed 1 of 1")

	r = run(t, cmd(f, "dlq", "stats")...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Regexp(t, `ledger\s+.*\s+4\n`, r.stdout)
	r = run(t, cmd(f, "dlq", "stats", "--json")...)
	var stats replay.DLQStatsReply
	r.json(t, &stats)
	require.Equal(t, int64(2), stats.Counts["ledger"][domain.DLQReplayed])

	// Every action above is in the audit log, and the chain verifies.
	db := []string{"--database-url", rw.DatabaseURL}
	require.Eventually(t, func() bool {
		r = run(t, append([]string{"audit", "list", "--json", "--limit", "1000"}, db...)...)
		var recs []domain.AuditRecord
		if r.code != cli.ExitOK || json.Unmarshal([]byte(r.stdout), &recs) != nil {
			return false
		}
		actions := map[string]bool{}
		for _, rec := range recs {
			actions[rec.Action] = true
		}
		return actions[replay.AuditDLQReplay] && actions[replay.AuditDLQReplayBatch]
	}, opstest.WaitFor, 20*time.Millisecond, "audit: %s %s", r.stdout, r.stderr)
	r = run(t, append([]string{"audit", "list"}, db...)...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Regexp(t, `SEQ\s+AT\s+ACTOR\s+ACTION`, r.stdout)
	require.Contains(t, r.stdout, "sre")
	r = run(t, append([]string{"audit", "verify"}, cmd(f, append(db, "--audit-key-file", keyFile(t))...)...)...)
	require.Equal(t, cli.ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "ok: the audit log is intact")
}

func TestDLQWithoutReplayWorkerIsUnreachable(t *testing.T) {
	t.Parallel()
	f := opstest.NewFleet(t)
	r := run(t, cmd(f, "dlq", "stats")...)
	require.Equal(t, cli.ExitUnreachable, r.code, r.stderr)
	require.Contains(t, r.stderr, "no replay-worker")
}

// bareServer starts a NATS server without the fleet's topology.
func bareServer(t *testing.T) string {
	t.Helper()
	return testenvNATS(t)
}
