package cli_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baldurfleet/baldur/internal/cli"
	"github.com/baldurfleet/baldur/internal/devstack"
	"github.com/baldurfleet/baldur/internal/domain"
	"github.com/baldurfleet/baldur/internal/opsclient/opstest"
	"github.com/baldurfleet/baldur/internal/testenv"
)

// keyFile writes the tests' audit key to a file and returns its path.
func keyFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "audit.key")
	require.NoError(t, os.WriteFile(p, append([]byte(testenv.AuditKey), '\n'), 0o600))
	return p
}

// psql runs sql against dbURL with the psql of the PostgreSQL the tests run.
func psql(t *testing.T, dbURL, sql string) {
	t.Helper()
	pg, err := devstack.FindPostgres()
	require.NoError(t, err)
	out, err := exec.Command(filepath.Join(pg.Dir, "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-q", "-d", dbURL, "-c", sql).CombinedOutput()
	require.NoError(t, err, "psql: %s", out)
}

// TestAuditVerifyCatchesTampering: `baldur audit verify` exits non-zero
// naming the first bad seq after the last 3 rows are deleted with psql, and
// after a row is edited and every later one re-hashed — without the key
// (the chain's HMAC sees it) and with it (the heads anchored in JetStream
// see it).
func TestAuditVerifyCatchesTampering(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		tamper func(t *testing.T, rw *opstest.Replay, recs []domain.AuditRecord)
		want   string
	}{
		{"last three rows deleted", func(t *testing.T, rw *opstest.Replay, _ []domain.AuditRecord) {
			psql(t, rw.DatabaseURL, `DELETE FROM audit_log WHERE seq > (SELECT max(seq) - 3 FROM audit_log)`)
		}, "at seq 8: cut: the log ends at seq 7 but seq 10 was anchored: seq 8..10 deleted"},
		{"a row edited, the rest re-hashed without the key", func(t *testing.T, rw *opstest.Replay, recs []domain.AuditRecord) {
			rehash(t, rw, recs, domain.AuditKey("a guess at the key, 32 bytes long"), 4)
		}, "at seq 4: modified"},
		{"a row edited, the rest re-hashed with the key", func(t *testing.T, rw *opstest.Replay, recs []domain.AuditRecord) {
			rehash(t, rw, recs, testenv.AuditKey, 4)
		}, "at seq 4: rewritten"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := opstest.NewFleet(t)
			rw := f.StartReplayWorker(t, "r1")
			var recs []domain.AuditRecord
			for i := range 10 {
				rec, err := rw.Store.AppendAudit(t.Context(), domain.AuditRecord{Actor: "sre", Action: "dlq.resolve",
					Subject: fmt.Sprintf("dlq:%d", i), Reason: "fixed by hand"})
				require.NoError(t, err)
				recs = append(recs, rec)
			}
			verify := append([]string{"audit", "verify"}, cmd(f, "--database-url", rw.DatabaseURL, "--audit-key-file", keyFile(t))...)
			r := run(t, verify...)
			require.Equal(t, cli.ExitOK, r.code, r.stderr)
			require.Contains(t, r.stdout, "10 records (last seq 10), checked against 10 anchored heads (highest seq 10)")

			tt.tamper(t, rw, recs)
			r = run(t, verify...)
			require.Equal(t, cli.ExitFailed, r.code, r.stdout)
			require.Contains(t, r.stderr, "baldur: audit log broken: audit chain broken "+tt.want)
		})
	}
}

// rehash edits record from (its reason) and writes it and every later record
// re-chained with key, as a database writer would.
func rehash(t *testing.T, rw *opstest.Replay, recs []domain.AuditRecord, key domain.AuditKey, from int64) {
	t.Helper()
	var sql strings.Builder
	prev := recs[from-2]
	for _, r := range recs[from-1:] {
		if r.Seq == from {
			r.Reason = "nothing happened"
		}
		c, err := domain.ChainAuditRecord(key, &prev, r)
		require.NoError(t, err)
		fmt.Fprintf(&sql, "UPDATE audit_log SET reason = '%s', prev_hash = '\\x%x', hash = '\\x%x' WHERE seq = %d;\n", c.Reason, c.PrevHash, c.Hash, c.Seq)
		prev = c
	}
	psql(t, rw.DatabaseURL, sql.String())
}

func TestAuditVerifyNeedsTheKey(t *testing.T) {
	t.Parallel()
	r := run(t, "audit", "verify", "--database-url", "postgres://nobody@127.0.0.1:1/x")
	require.Equal(t, cli.ExitUsage, r.code, r.stdout)
	require.Contains(t, r.stderr, "--audit-key-file ($BALDUR_AUDIT_KEY_FILE)")
}
